-- wrk script for `make bench` (bench/run.py sets the BENCH_* environment).
--
-- BENCH_MODE    create | confirm | replay | bff
-- BENCH_TOKEN   bearer token sent on every request
-- BENCH_RUN     run id, prefix of every idempotency key (keys are unique per request)
-- BENCH_CUSTOMERS, BENCH_PRODUCTS   comma-separated ids to pick from (create, bff)
-- BENCH_ORDER_LO, BENCH_ORDER_HI    CREATED orders to confirm, each once (confirm), or
--                                   confirmed orders whose key is "<BENCH_RUN>-replay-<id>" (replay)
--
-- Every thread counts responses by status; done() prints one JSON line prefixed "BENCH_RESULT ".

local mode = os.getenv("BENCH_MODE") or "create"
local token = os.getenv("BENCH_TOKEN") or ""
local run_id = os.getenv("BENCH_RUN") or "run"
local order_lo = tonumber(os.getenv("BENCH_ORDER_LO") or "0")
local order_hi = tonumber(os.getenv("BENCH_ORDER_HI") or "0")

local function split_ids(value)
  local ids = {}
  for id in string.gmatch(value or "", "%d+") do
    ids[#ids + 1] = tonumber(id)
  end
  return ids
end

local customers = split_ids(os.getenv("BENCH_CUSTOMERS"))
local products = split_ids(os.getenv("BENCH_PRODUCTS"))

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  threads[#threads + 1] = thread
end

-- Per-thread state; globals, because done() reads them with thread:get().
counter = 0
statuses = {}
replayed = 0
exhausted = 0
local headers = {}

function init(args)
  thread_stride = tonumber(os.getenv("BENCH_THREADS") or "1")
  math.randomseed(os.time() + thread_index * 7919)
  headers["Authorization"] = "Bearer " .. token
  headers["Content-Type"] = "application/json"
  next_order = order_lo + thread_index
end

local function key()
  counter = counter + 1
  return string.format("%s-%d-%d", run_id, thread_index, counter)
end

local function pick(list)
  return list[math.random(#list)]
end

function request()
  if mode == "create" then
    headers["Idempotency-Key"] = key()
    local body = string.format('{"customer_id": %d, "items": [{"product_id": %d, "qty": 1}]}',
      pick(customers), pick(products))
    return wrk.format("POST", "/orders", headers, body)
  elseif mode == "confirm" then
    local order_id = next_order
    next_order = next_order + thread_stride
    if order_id > order_hi then
      exhausted = exhausted + 1  -- ran out of seeded orders: the 409s that follow are ours
    end
    headers["Idempotency-Key"] = key()
    return wrk.format("POST", "/orders/" .. order_id .. "/confirm", headers, nil)
  elseif mode == "replay" then
    local order_id = next_order
    next_order = next_order + thread_stride
    if next_order > order_hi then
      next_order = order_lo + thread_index
    end
    headers["Idempotency-Key"] = run_id .. "-replay-" .. order_id
    return wrk.format("POST", "/orders/" .. order_id .. "/confirm", headers, nil)
  else -- bff
    headers["Idempotency-Key"] = key()
    local body = string.format('{"customer_id": %d, "items": [{"product_id": %d, "qty": 1}]}',
      pick(customers), pick(products))
    return wrk.format("POST", "/orchestrator/create-and-confirm-order", headers, body)
  end
end

function response(status, resp_headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if resp_headers["Idempotent-Replayed"] == "true" or resp_headers["idempotent-replayed"] == "true" then
    replayed = replayed + 1
  end
end

function done(summary, latency, requests)
  local merged = {}
  local total_replayed = 0
  local total_exhausted = 0
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses") or {}
    for status, n in pairs(counts) do
      merged[status] = (merged[status] or 0) + n
    end
    total_replayed = total_replayed + (thread:get("replayed") or 0)
    total_exhausted = total_exhausted + (thread:get("exhausted") or 0)
  end
  local parts = {}
  for status, n in pairs(merged) do
    parts[#parts + 1] = string.format('"%d": %d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p95": %d, "p99": %d, "max": %d, "mean": %.1f}, ' ..
    '"statuses": {%s}, "socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"replayed": %d, "orders_exhausted": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean,
    table.concat(parts, ", "), e.connect, e.read, e.write, e.timeout,
    total_replayed, total_exhausted))
end
