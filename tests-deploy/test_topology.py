"""The production topology in template.yaml, read as data: what can reach what, what is public,
HTTPS everywhere, where secrets come from, the WAF and the per-route throttles, the migration
tasks, and the deploy workflow's order. Every check is also run on a deliberately broken copy.

cfn-lint (test_sam.py) checks that the template is valid; these check that it is what we mean.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml
from deploycheck import WORKFLOWS_DIR
from test_sam import TEMPLATE, load_template

TEXT = TEMPLATE.read_text()


@pytest.fixture
def template() -> dict:
    return load_template(TEXT)


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {name: r.get("Properties", {}) for name, r in template["Resources"].items() if r["Type"] == kind}


def ref(value) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def getatt(value) -> list[str]:
    """`!GetAtt A.B` (read as the string "A.B") or `Fn::GetAtt: [A, B]`, as [A, B]."""
    target = value.get("Fn::GetAtt") if isinstance(value, dict) else None
    return target.split(".") if isinstance(target, str) else list(target or [])


def refs(values) -> list[str | None]:
    return [ref(v) for v in values or []]


def parameter_default(template: dict, value):
    name = ref(value)
    return template["Parameters"][name].get("Default") if name in template.get("Parameters", {}) else value


# --- security groups ----------------------------------------------------------------------------

# group → {(source group, port)}: who may open a connection to whom, and nothing else.
EXPECTED_INGRESS = {
    "LoadBalancerSecurityGroup": {
        ("LambdaSecurityGroup", 443),
        ("PaymentsLambdaSecurityGroup", 443),
        ("CustomersServiceSecurityGroup", 443),
        ("OrdersServiceSecurityGroup", 443),
    },
    "EndpointSecurityGroup": {
        ("LambdaSecurityGroup", 443),
        ("PaymentsLambdaSecurityGroup", 443),
        ("CustomersServiceSecurityGroup", 443),
        ("OrdersServiceSecurityGroup", 443),
    },
    "CustomersServiceSecurityGroup": {("LoadBalancerSecurityGroup", 3001)},
    "OrdersServiceSecurityGroup": {("LoadBalancerSecurityGroup", 3002)},
    "CustomersDatabaseSecurityGroup": {("CustomersServiceSecurityGroup", 3306)},
    "OrdersDatabaseSecurityGroup": {("OrdersServiceSecurityGroup", 3306)},
    "LambdaSecurityGroup": set(),
    "PaymentsLambdaSecurityGroup": set(),
}
DATABASE_OWNERS = {
    "CustomersDatabaseSecurityGroup": "CustomersServiceSecurityGroup",
    "OrdersDatabaseSecurityGroup": "OrdersServiceSecurityGroup",
}
NO_EGRESS = "127.0.0.1/32"  # the placeholder rule that removes the default allow-all egress
# The one justified rule to anywhere: the payment provider's API, through the NAT gateway.
OPEN_EGRESS_ALLOWED = {("PaymentsLambdaSecurityGroup", 443)}


def security_group_rules(template: dict) -> tuple[list[dict], list[dict]]:
    """(ingress, egress) rules, inline and standalone, each with its `Group`."""
    ingress, egress = [], []
    for name, props in resources(template, "AWS::EC2::SecurityGroup").items():
        ingress += [{**rule, "Group": name, "Inline": True} for rule in props.get("SecurityGroupIngress") or []]
        egress += [{**rule, "Group": name, "Inline": True} for rule in props.get("SecurityGroupEgress") or []]
    for props in resources(template, "AWS::EC2::SecurityGroupIngress").values():
        ingress.append({**props, "Group": ref(props.get("GroupId"))})
    for props in resources(template, "AWS::EC2::SecurityGroupEgress").values():
        egress.append({**props, "Group": ref(props.get("GroupId"))})
    return ingress, egress


def security_group_problems(template: dict) -> list[str]:
    problems = []
    groups = set(resources(template, "AWS::EC2::SecurityGroup"))
    ingress, egress = security_group_rules(template)
    actual: dict[str, set] = {group: set() for group in groups}
    for rule in ingress:
        source = ref(rule.get("SourceSecurityGroupId"))
        if source not in groups:
            open_to = rule.get("CidrIp") or rule.get("CidrIpv6") or rule.get("SourcePrefixListId") or "?"
            problems.append(f"{rule['Group']}: ingress from {open_to}, not from a named group")
            continue
        if rule.get("FromPort") != rule.get("ToPort") or str(rule.get("IpProtocol")) != "tcp":
            problems.append(f"{rule['Group']}: ingress from {source} is not one TCP port")
        actual.setdefault(rule["Group"], set()).add((source, rule.get("FromPort")))
    if actual != EXPECTED_INGRESS:
        for group in sorted(set(actual) | set(EXPECTED_INGRESS)):
            if actual.get(group, set()) != EXPECTED_INGRESS.get(group, set()):
                found, expected = sorted(actual.get(group, set())), sorted(EXPECTED_INGRESS.get(group, set()))
                problems.append(f"{group}: ingress {found}, expected {expected}")
    for group in groups:
        if not any(rule["Group"] == group and rule.get("Inline") for rule in egress):
            problems.append(f"{group}: no inline egress rule, so AWS keeps its default allow-all egress")
    for rule in egress:
        cidr = rule.get("CidrIp") or rule.get("CidrIpv6")
        destination = ref(rule.get("DestinationSecurityGroupId"))
        if cidr == NO_EGRESS:
            continue
        if cidr in ("0.0.0.0/0", "::/0"):
            if (rule["Group"], rule.get("FromPort")) not in OPEN_EGRESS_ALLOWED or rule.get("ToPort") != rule.get(
                "FromPort"
            ):
                problems.append(f"{rule['Group']}: egress to {cidr} port {rule.get('FromPort')} is not justified")
            continue
        if cidr:
            problems.append(f"{rule['Group']}: egress to {cidr}")
        if destination in DATABASE_OWNERS and DATABASE_OWNERS[destination] != rule["Group"]:
            problems.append(f"{rule['Group']}: egress to {destination}, another service's database")
        if str(rule.get("IpProtocol")) == "-1":
            problems.append(f"{rule['Group']}: egress on every protocol and port")
    return problems


def test_security_groups_open_only_what_the_picture_shows(template):
    assert security_group_problems(template) == []


@pytest.mark.parametrize(
    "breakage",
    [
        "database open to the VPC",
        "orders reaches customers' database",
        "open egress",
        "default egress",
        "lb from anywhere",
    ],
)
def test_security_group_check_catches_mistakes(template, breakage):
    broken = copy.deepcopy(template)
    res = broken["Resources"]
    if breakage == "database open to the VPC":
        res["CustomersDatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"].append(
            {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "CidrIp": "10.40.0.0/16"}
        )
    elif breakage == "orders reaches customers' database":
        res["OrdersServiceEgressToDatabase"]["Properties"]["DestinationSecurityGroupId"] = {
            "Ref": "CustomersDatabaseSecurityGroup"
        }
        res["CustomersDatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"][0]["SourceSecurityGroupId"] = {
            "Ref": "OrdersServiceSecurityGroup"
        }
    elif breakage == "open egress":
        res["CustomersServiceSecurityGroup"]["Properties"]["SecurityGroupEgress"].append(
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"}
        )
    elif breakage == "default egress":
        res["OrdersDatabaseSecurityGroup"]["Properties"].pop("SecurityGroupEgress")
    else:
        res["LoadBalancerIngressFromLambdas"]["Properties"].pop("SourceSecurityGroupId")
        res["LoadBalancerIngressFromLambdas"]["Properties"]["CidrIp"] = "0.0.0.0/0"
    assert security_group_problems(broken)


# --- nothing public but the API -------------------------------------------------------------------

PRIVATE_SUBNETS = {"PrivateSubnetA", "PrivateSubnetB"}
EGRESS_SUBNETS = {"EgressSubnetA", "EgressSubnetB"}
DATA_SUBNETS = {"DataSubnetA", "DataSubnetB"}
PUBLIC_SUBNETS = {"PublicSubnetA", "PublicSubnetB"}
# What may face the internet: the edge (CloudFront + WAF) and the HTTP API behind it; NAT
# gateways (outbound only) and the internet gateway they need.
PUBLIC_KINDS = {
    "AWS::Serverless::HttpApi",
    "AWS::CloudFront::Distribution",
    "AWS::WAFv2::WebACL",
    "AWS::EC2::NatGateway",
    "AWS::EC2::EIP",
    "AWS::EC2::InternetGateway",
}
FORBIDDEN_KINDS = {
    "AWS::EC2::Instance",
    "AWS::S3::Bucket",
    "AWS::Lambda::Url",
    "AWS::ApiGateway::RestApi",
    "AWS::Serverless::Api",
    "AWS::ElasticLoadBalancing::LoadBalancer",
    "AWS::RDS::DBCluster",
}


def exposure_problems(template: dict) -> list[str]:
    problems = []
    for name, r in template["Resources"].items():
        if r["Type"] in FORBIDDEN_KINDS:
            problems.append(f"{name}: {r['Type']} is not part of the private topology")
    for name, props in resources(template, "AWS::EC2::Subnet").items():
        if props.get("MapPublicIpOnLaunch") is not False:
            problems.append(f"{name}: MapPublicIpOnLaunch must be false")
    # Public subnets hold NAT gateways only.
    for name, r in template["Resources"].items():
        if r["Type"] in ("AWS::EC2::NatGateway", "AWS::EC2::SubnetRouteTableAssociation"):
            continue
        used = PUBLIC_SUBNETS & set(re.findall(r"'Ref': '(\w+)'", str(r.get("Properties", {}))))
        if used:
            problems.append(f"{name} is placed in public subnets {sorted(used)}")
    # Routes to the internet: the public subnets to the IGW, the egress subnets to a NAT; nothing else.
    for name, props in resources(template, "AWS::EC2::Route").items():
        table = ref(props.get("RouteTableId"))
        if props.get("GatewayId") and table != "PublicRouteTable":
            problems.append(f"{name}: an internet gateway route in {table}")
        if props.get("NatGatewayId") and not str(table).startswith("EgressRouteTable"):
            problems.append(f"{name}: a NAT route in {table} (only the payments function's subnets have one)")
    for name, props in resources(template, "AWS::ElasticLoadBalancingV2::LoadBalancer").items():
        if props.get("Scheme") != "internal":
            problems.append(f"{name}: scheme {props.get('Scheme')}, must be internal")
        if set(refs(props.get("Subnets"))) != PRIVATE_SUBNETS:
            problems.append(f"{name}: subnets {refs(props.get('Subnets'))}, must be the private ones")
    for name, props in resources(template, "AWS::RDS::DBInstance").items():
        if props.get("PubliclyAccessible") is not False:
            problems.append(f"{name}: PubliclyAccessible must be false")
        if props.get("StorageEncrypted") is not True:
            problems.append(f"{name}: StorageEncrypted must be true")
        if props.get("ManageMasterUserPassword") is not True or "MasterUserPassword" in props:
            problems.append(f"{name}: the master password must be generated into Secrets Manager")
        group = resources(template, "AWS::RDS::DBSubnetGroup").get(ref(props.get("DBSubnetGroupName")), {})
        if set(refs(group.get("SubnetIds"))) != DATA_SUBNETS:
            problems.append(f"{name}: not in the data subnets")
    for name, props in resources(template, "AWS::ECS::Service").items():
        network = props.get("NetworkConfiguration", {}).get("AwsvpcConfiguration", {})
        if network.get("AssignPublicIp") != "DISABLED":
            problems.append(f"{name}: AssignPublicIp must be DISABLED")
        if set(refs(network.get("Subnets"))) != PRIVATE_SUBNETS:
            problems.append(f"{name}: tasks must run in the private subnets")
    for name, props in resources(template, "AWS::Serverless::Function").items():
        subnets = set(refs((props.get("VpcConfig") or {}).get("SubnetIds")))
        expected = EGRESS_SUBNETS if name == "PaymentsFunction" else PRIVATE_SUBNETS
        if subnets != expected:
            problems.append(f"{name}: VpcConfig subnets {sorted(map(str, subnets))}, expected {sorted(expected)}")
        if "FunctionUrlConfig" in props:
            problems.append(f"{name}: a function URL is a public endpoint")
    if "VpcConfig" in (template.get("Globals", {}).get("Function") or {}):
        problems.append("Globals.Function.VpcConfig: SAM appends its lists to each function's own")
    return problems


def test_nothing_but_the_api_is_public(template):
    assert exposure_problems(template) == []
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert kinds >= PUBLIC_KINDS


@pytest.mark.parametrize(
    "breakage",
    ["internet-facing lb", "public database", "public task ip", "lambda outside the vpc", "nat for services"],
)
def test_exposure_check_catches_mistakes(template, breakage):
    broken = copy.deepcopy(template)
    res = broken["Resources"]
    if breakage == "internet-facing lb":
        res["LoadBalancer"]["Properties"]["Scheme"] = "internet-facing"
    elif breakage == "public database":
        res["OrdersDatabase"]["Properties"]["PubliclyAccessible"] = True
    elif breakage == "public task ip":
        res["CustomersService"]["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] = (
            "ENABLED"
        )
    elif breakage == "lambda outside the vpc":
        res["SweeperFunction"]["Properties"].pop("VpcConfig")
    else:
        res["PrivateDefaultRoute"] = {
            "Type": "AWS::EC2::Route",
            "Properties": {"RouteTableId": {"Ref": "PrivateRouteTable"}, "NatGatewayId": {"Ref": "NatGatewayA"}},
        }
    assert exposure_problems(broken)


# --- HTTPS only -----------------------------------------------------------------------------------


def https_problems(template: dict) -> list[str]:
    problems = []
    listeners = resources(template, "AWS::ElasticLoadBalancingV2::Listener")
    for name, props in listeners.items():
        if props.get("Protocol") != "HTTPS" or not props.get("Certificates"):
            problems.append(f"{name}: {props.get('Protocol')} listener; HTTPS with a certificate only")
        if not str(props.get("SslPolicy", "")).startswith("ELBSecurityPolicy-TLS13"):
            problems.append(f"{name}: SslPolicy {props.get('SslPolicy')} (TLS 1.2+ with TLS 1.3)")
    if not listeners:
        problems.append("no listener")
    # Every URL a component is given: https://.
    envs = [(f"Globals {k}", v) for k, v in template["Globals"]["Function"]["Environment"]["Variables"].items()]
    for name, props in resources(template, "AWS::Serverless::Function").items():
        envs += [(f"{name} {k}", v) for k, v in (props.get("Environment") or {}).get("Variables", {}).items()]
    for name, props in resources(template, "AWS::ECS::TaskDefinition").items():
        for container in props["ContainerDefinitions"]:
            envs += [(f"{name} {e['Name']}", e["Value"]) for e in container.get("Environment", [])]
    for where, value in envs:
        if where.endswith("_URL") and "QUEUE" not in where and "DLQ" not in where:
            text = value.get("Fn::Sub") if isinstance(value, dict) and "Fn::Sub" in value else value
            if isinstance(text, dict) and ref(text) in template["Parameters"]:
                text = template["Parameters"][ref(text)].get("AllowedPattern", "")
                if re.fullmatch(text, "http://x.example") or not re.fullmatch(text, "https://x.example"):
                    problems.append(f"{where}: its parameter accepts http:// URLs")
            elif not str(text).startswith("https://"):
                problems.append(f"{where} = {text}: not https://")
    for name, spec in template["Parameters"].items():
        if name.endswith("Url") and re.fullmatch(spec.get("AllowedPattern", ".*"), "http://x.example"):
            problems.append(f"parameter {name} accepts http:// URLs")
    for name, props in resources(template, "AWS::CloudFront::Distribution").items():
        config = props["DistributionConfig"]
        if config["DefaultCacheBehavior"].get("ViewerProtocolPolicy") not in ("https-only", "redirect-to-https"):
            problems.append(f"{name}: viewers may use plain HTTP")
        for origin in config["Origins"]:
            if origin.get("CustomOriginConfig", {}).get("OriginProtocolPolicy") != "https-only":
                problems.append(f"{name}: origin {origin['Id']} over plain HTTP")
    return problems


def test_https_only(template):
    assert https_problems(template) == []


@pytest.mark.parametrize("breakage", ["http listener", "http url", "http parameter", "http viewers"])
def test_https_check_catches_mistakes(template, breakage):
    broken = copy.deepcopy(template)
    res = broken["Resources"]
    if breakage == "http listener":
        res["HttpsListener"]["Properties"]["Protocol"] = "HTTP"
    elif breakage == "http url":
        broken["Globals"]["Function"]["Environment"]["Variables"]["ORDERS_API_URL"] = {
            "Fn::Sub": "http://orders.${ServicesDomainName}"
        }
    elif breakage == "http parameter":
        broken["Parameters"]["PaymentGatewayUrl"]["AllowedPattern"] = "^https?://.+$"
    else:
        res["EdgeDistribution"]["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]["ViewerProtocolPolicy"] = (
            "allow-all"
        )
    assert https_problems(broken)


def test_the_load_balancer_routes_by_host_and_checks_ready(template):
    rules = resources(template, "AWS::ElasticLoadBalancingV2::ListenerRule")
    routes = {
        rule["Conditions"][0]["HostHeaderConfig"]["Values"][0]["Fn::Sub"]: ref(rule["Actions"][0]["TargetGroupArn"])
        for rule in rules.values()
    }
    assert routes == {
        "customers.${ServicesDomainName}": "CustomersTargetGroup",
        "orders.${ServicesDomainName}": "OrdersTargetGroup",
    }
    for props in resources(template, "AWS::ElasticLoadBalancingV2::TargetGroup").values():
        assert props["HealthCheckPath"] == "/ready" and props["TargetType"] == "ip"
    records = {p["Name"]["Fn::Sub"] for p in resources(template, "AWS::Route53::RecordSet").values()}
    assert records == set(routes)
    zone = resources(template, "AWS::Route53::HostedZone")["ServicesZone"]
    assert refs(v["VPCId"] for v in zone["VPCs"]) == ["Vpc"], "the services' names must resolve inside the VPC only"


# --- secrets ----------------------------------------------------------------------------------------

SECRETISH = re.compile(r"PASSWORD|SECRET|JWT_KEYS|API_KEY|TOKEN|PRIVATE_KEY", re.I)
# Parameters whose names sound secret but are not: public keys, and a version id of a secret.
NOT_SECRET_PARAMETERS = {"ServiceJwtPublicKeys", "OriginVerifySecretVersion"}


def secret_problems(template: dict) -> list[str]:
    problems = []
    stack_secrets = set(resources(template, "AWS::SecretsManager::Secret"))
    for name, spec in template["Parameters"].items():
        if name in NOT_SECRET_PARAMETERS:
            continue
        if re.search(r"password|secret|token|key(?!s?Secret)", name, re.I) and not (
            name.endswith("SecretArn") and spec.get("AllowedPattern", "").startswith("^arn:")
        ):
            problems.append(
                f"parameter {name}: a secret must come from Secrets Manager (a *SecretArn), not a parameter"
            )
    envs = [("Globals", k, v) for k, v in template["Globals"]["Function"]["Environment"]["Variables"].items()]
    for name, props in resources(template, "AWS::Serverless::Function").items():
        envs += [(name, k, v) for k, v in (props.get("Environment") or {}).get("Variables", {}).items()]
    for name, props in resources(template, "AWS::ECS::TaskDefinition").items():
        for container in props["ContainerDefinitions"]:
            envs += [(f"{name}/{container['Name']}", e["Name"], e["Value"]) for e in container.get("Environment", [])]
    for where, variable, value in envs:
        if SECRETISH.search(variable) and not variable.endswith("_SECRET_ID"):
            problems.append(f"{where}: {variable} as a plain environment value")
        named = str(ref(value) or "")
        if variable.endswith("_SECRET_ID") and not (named.endswith("SecretArn") or named in stack_secrets):
            problems.append(f"{where}: {variable} must name a secret by its ARN parameter or a secret of the stack")
    # ECS: secrets only through Secrets (valueFrom), and each execution role reads exactly them.
    roles = resources(template, "AWS::IAM::Role")
    for name, props in resources(template, "AWS::ECS::TaskDefinition").items():
        used = set()
        for container in props["ContainerDefinitions"]:
            for secret in container.get("Secrets", []):
                value = secret["ValueFrom"]
                text = value.get("Fn::Sub") if isinstance(value, dict) and "Fn::Sub" in value else None
                used.add(re.sub(r":\w+::$", "", text.strip("${}").replace("}", "")) if text else ref(value))
        role = roles[getatt(props["ExecutionRoleArn"])[0]]
        readable = set()
        for policy in role.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                if "secretsmanager:GetSecretValue" in str(statement["Action"]):
                    for resource in statement["Resource"]:
                        readable.add(ref(resource) or ".".join(getatt(resource)))
        if readable != used:
            problems.append(f"{name}: its execution role reads {sorted(readable)}, its containers get {sorted(used)}")
        if props.get("TaskRoleArn"):
            problems.append(f"{name}: a task role (the applications call no AWS API)")
    return problems


def test_secrets_come_from_secrets_manager_and_only_to_who_needs_them(template):
    assert secret_problems(template) == []


def container(template: dict, task: str, name: str) -> dict:
    definitions = template["Resources"][task]["Properties"]["ContainerDefinitions"]
    return next(c for c in definitions if c["Name"] == name)


@pytest.mark.parametrize("breakage", ["password parameter", "plain env", "role reads more", "secret by name"])
def test_secret_check_catches_mistakes(template, breakage):
    broken = copy.deepcopy(template)
    if breakage == "password parameter":
        broken["Parameters"]["DatabasePassword"] = {"Type": "String", "NoEcho": True}
    elif breakage == "plain env":
        container(broken, "OrdersServiceTaskDefinition", "orders-service")["Environment"].append(
            {"Name": "SERVICE_JWT_PRIVATE_KEYS", "Value": "k1:not-so-secret"}
        )
    elif breakage == "role reads more":
        role = broken["Resources"]["CustomersServiceExecutionRole"]["Properties"]
        role["Policies"][0]["PolicyDocument"]["Statement"][0]["Resource"].append({"Ref": "OrdersDbAppSecret"})
    else:
        broken["Resources"]["PaymentsFunction"]["Properties"]["Environment"]["Variables"][
            "PAYMENT_GATEWAY_API_KEY_SECRET_ID"
        ] = "b2b/staging/payment-gateway-api-key"
    assert secret_problems(broken)


def test_each_service_runs_as_its_dml_user_and_migrates_as_its_ddl_user(template):
    for service, prefix in (("customers", "Customers"), ("orders", "Orders")):
        runtime = container(template, f"{prefix}ServiceTaskDefinition", f"{service}-service")
        users = {s["Name"]: s["ValueFrom"]["Fn::Sub"] for s in runtime["Secrets"] if s["Name"].startswith("DB_")}
        assert users == {
            "DB_USER": f"${{{prefix}DbAppSecret}}:username::",
            "DB_PASSWORD": f"${{{prefix}DbAppSecret}}:password::",
        }
        task = f"{prefix}MigrationTaskDefinition"
        provision, migrate = container(template, task, "db-users"), container(template, task, "migrate")
        assert provision["Command"] == ["python", "-m", "servicekit.dbusers"] and provision["Essential"] is False
        assert migrate["DependsOn"] == [{"ContainerName": "db-users", "Condition": "SUCCESS"}]
        assert migrate["Command"] == ["python", "-m", f"{service}_service.cli", "migrate"]
        migrate_users = {s["Name"]: s["ValueFrom"]["Fn::Sub"] for s in migrate["Secrets"]}
        assert migrate_users == {
            "DB_USER": f"${{{prefix}DbMigrateSecret}}:username::",
            "DB_PASSWORD": f"${{{prefix}DbMigrateSecret}}:password::",
        }
        admin = {s["Name"]: s["ValueFrom"]["Fn::Sub"] for s in provision["Secrets"]}
        assert admin["DB_ADMIN_PASSWORD"] == f"${{{prefix}Database.MasterUserSecret.SecretArn}}:password::"
        secrets = template["Resources"]
        assert (
            f'"{service}_app"'
            in secrets[f"{prefix}DbAppSecret"]["Properties"]["GenerateSecretString"]["SecretStringTemplate"]
        )
        for key in ("DB_HOST", "DB_NAME"):
            hosts = {e["Name"]: e["Value"] for e in runtime["Environment"]}
            assert {e["Name"]: e["Value"] for e in migrate["Environment"]}[key] == hosts[key]


# --- service identities: one private key per caller, read by that caller alone ---------------------

# Component → (the parameter holding its private keys, does it verify service tokens?).
IDENTITIES = {
    "OrchestratorFunction": ("OrchestratorJwtKeySecretArn", False),
    "PaymentsFunction": ("PaymentsJwtKeySecretArn", False),
    "SweeperFunction": ("SweeperJwtKeySecretArn", False),
    "CustomersServiceTaskDefinition": ("CustomersServiceJwtKeySecretArn", True),
    "OrdersServiceTaskDefinition": ("OrdersServiceJwtKeySecretArn", True),
}


def identity_problems(template: dict) -> list[str]:
    """Each caller gets its own private key (a secret no other component may read) and the
    verifiers every caller's public keys; no key is shared, none comes from Globals."""
    problems = []
    key_parameters = {parameter for parameter, _ in IDENTITIES.values()}
    if "SERVICE_JWT" in str(template["Globals"]):
        problems.append("Globals: service keys are per function, never global")
    if "ServiceJwtKeysSecretArn" in template["Parameters"] or "SERVICE_JWT_KEYS" in str(template["Resources"]):
        problems.append("a shared service-token secret (SERVICE_JWT_KEYS) is still wired")
    readers: dict[str, set[str]] = {parameter: set() for parameter in key_parameters}
    for name, props in resources(template, "AWS::Serverless::Function").items():
        env = (props.get("Environment") or {}).get("Variables", {})
        for policy in props.get("Policies") or []:
            secret = ref((policy.get("AWSSecretsManagerGetSecretValuePolicy") or {}).get("SecretArn"))
            if secret in readers:
                readers[secret].add(name)
        own = IDENTITIES.get(name, (None, False))[0]
        if ref(env.get("SERVICE_JWT_PRIVATE_KEYS_SECRET_ID")) != own:
            problems.append(f"{name}: SERVICE_JWT_PRIVATE_KEYS_SECRET_ID is not its own {own}")
    roles = resources(template, "AWS::IAM::Role")
    for name, props in resources(template, "AWS::ECS::TaskDefinition").items():
        role = getatt(props["ExecutionRoleArn"])[0]
        for policy in roles[role].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                for resource in statement.get("Resource", []):
                    if ref(resource) in readers:
                        readers[ref(resource)].add(name)
        if name not in IDENTITIES:
            continue
        own, verifies = IDENTITIES[name]
        for container in props["ContainerDefinitions"]:
            secrets = {s["Name"]: ref(s["ValueFrom"]) for s in container.get("Secrets", [])}
            env = {e["Name"]: e["Value"] for e in container.get("Environment", [])}
            if secrets.get("SERVICE_JWT_PRIVATE_KEYS") != own:
                problems.append(f"{name}: SERVICE_JWT_PRIVATE_KEYS is not its own {own}")
            if verifies and ref(env.get("SERVICE_JWT_PUBLIC_KEYS")) != "ServiceJwtPublicKeys":
                problems.append(f"{name}: no SERVICE_JWT_PUBLIC_KEYS to verify its callers with")
    for parameter, holders in readers.items():
        expected = {name for name, (own, _) in IDENTITIES.items() if own == parameter}
        if holders != expected:
            problems.append(f"{parameter} is readable by {sorted(holders)}, expected {sorted(expected)}")
    return problems


def test_each_caller_holds_its_own_private_key_and_verifiers_hold_public_keys(template):
    assert identity_problems(template) == []


@pytest.mark.parametrize("breakage", ["shared key", "another's key", "global key", "no public keys"])
def test_identity_check_catches_mistakes(template, breakage):
    broken = copy.deepcopy(template)
    res = broken["Resources"]
    if breakage == "shared key":  # the sweeper may read the BFF's key too
        res["SweeperFunction"]["Properties"]["Policies"].append(
            {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "OrchestratorJwtKeySecretArn"}}}
        )
    elif breakage == "another's key":
        container(broken, "OrdersServiceTaskDefinition", "orders-service")["Secrets"][-1]["ValueFrom"] = {
            "Ref": "CustomersServiceJwtKeySecretArn"
        }
    elif breakage == "global key":
        broken["Globals"]["Function"]["Environment"]["Variables"]["SERVICE_JWT_PRIVATE_KEYS_SECRET_ID"] = {
            "Ref": "PaymentsJwtKeySecretArn"
        }
    else:
        definition = container(broken, "CustomersServiceTaskDefinition", "customers-service")
        definition["Environment"] = [e for e in definition["Environment"] if e["Name"] != "SERVICE_JWT_PUBLIC_KEYS"]
    assert identity_problems(broken)


# --- the public edge: WAF and per-route throttles ---------------------------------------------------


def edge_problems(template: dict) -> list[str]:
    problems = []
    acls = resources(template, "AWS::WAFv2::WebACL")
    distributions = resources(template, "AWS::CloudFront::Distribution")
    login_rules = []
    for name, acl in acls.items():
        if acl.get("Scope") != "CLOUDFRONT":
            problems.append(f"{name}: scope {acl.get('Scope')}; it protects the CloudFront distribution")
        for rule in acl.get("Rules", []):
            rate = rule["Statement"].get("RateBasedStatement")
            if rate and "/auth/login" in str(rate.get("ScopeDownStatement")) and "Block" in rule.get("Action", {}):
                login_rules.append(rule["Name"])
    if not login_rules:
        problems.append("no WAF rate-based rule blocking POST /auth/login floods")
    for name, props in distributions.items():
        config = props["DistributionConfig"]
        if (getatt(config.get("WebACLId")) or [None])[0] not in acls:
            problems.append(f"{name}: no WebACL of this stack")
        origins = [o["DomainName"].get("Fn::Sub", "") for o in config["Origins"]]
        if not all(o.startswith("${HttpApi}.execute-api.") for o in origins):
            problems.append(f"{name}: origins {origins}, expected the HTTP API")
    if not distributions:
        problems.append("no CloudFront distribution in front of the HTTP API")
    problems += origin_problems(template)
    api = resources(template, "AWS::Serverless::HttpApi")["HttpApi"]
    default = api.get("DefaultRouteSettings", {})
    login = (api.get("RouteSettings") or {}).get("POST /auth/login")
    if not login:
        problems.append("HttpApi: no throttle of its own on POST /auth/login")
    else:
        for limit in ("ThrottlingRateLimit", "ThrottlingBurstLimit"):
            value, general = (
                parameter_default(template, login.get(limit)),
                parameter_default(template, default.get(limit)),
            )
            if value is None or general is None or not value < general:
                problems.append(f"HttpApi: POST /auth/login {limit} {value} is not below the default {general}")
    events = template["Resources"]["OrchestratorFunction"]["Properties"]["Events"].values()
    routes = {(e["Properties"].get("Method"), e["Properties"].get("Path")) for e in events if e["Type"] == "HttpApi"}
    if ("POST", "/auth/login") not in routes:
        problems.append("OrchestratorFunction: no POST /auth/login route for the throttle to apply to")
    return problems


def origin_problems(template: dict) -> list[str]:
    """WAF cannot be bypassed: CloudFront adds the origin secret (from Secrets Manager, generated
    by the stack) to every request, and the BFF, which refuses requests without it, reads that same
    secret; CloudFront writes the viewer's address for the login throttle on every request."""
    problems = []
    stack_secrets = resources(template, "AWS::SecretsManager::Secret")
    bff = template["Resources"]["OrchestratorFunction"]["Properties"]
    secret = ref(bff["Environment"]["Variables"].get("ORIGIN_VERIFY_SECRET_ID"))
    if secret not in stack_secrets:
        problems.append("OrchestratorFunction: no ORIGIN_VERIFY_SECRET_ID naming a secret of the stack")
    elif not any(
        ref((p.get("AWSSecretsManagerGetSecretValuePolicy") or {}).get("SecretArn")) == secret
        for p in bff.get("Policies") or []
    ):
        problems.append("OrchestratorFunction: may not read the origin secret")
    functions = resources(template, "AWS::CloudFront::Function")
    for name, props in resources(template, "AWS::CloudFront::Distribution").items():
        config = props["DistributionConfig"]
        for origin in config["Origins"]:
            headers = {h["HeaderName"].lower(): h["HeaderValue"] for h in origin.get("OriginCustomHeaders", [])}
            value = json.dumps(headers.get("x-origin-verify"))
            if not secret or f"{{{{resolve:secretsmanager:${{{secret}}}:SecretString:current" not in value:
                problems.append(f"{name}: origin {origin['Id']} does not send X-Origin-Verify from {secret}")
        associations = config["DefaultCacheBehavior"].get("FunctionAssociations", [])
        viewer = [getatt(a["FunctionARN"])[0] for a in associations if a.get("EventType") == "viewer-request"]
        code = functions.get(viewer[0], {}).get("FunctionCode", "") if viewer else ""
        if "x-viewer-address" not in code or "event.viewer.ip" not in code:
            problems.append(f"{name}: no viewer-request function writing x-viewer-address from event.viewer.ip")
    return problems


def test_waf_and_throttles_guard_login(template):
    assert edge_problems(template) == []


@pytest.mark.parametrize(
    "breakage",
    [
        "no waf rule",
        "no route throttle",
        "looser login",
        "no route",
        "no origin header",
        "bff without the origin secret",
        "no viewer address",
    ],
)
def test_edge_check_catches_mistakes(template, breakage):
    broken = copy.deepcopy(template)
    res = broken["Resources"]
    distribution = res["EdgeDistribution"]["Properties"]["DistributionConfig"]
    if breakage == "no origin header":
        distribution["Origins"][0].pop("OriginCustomHeaders")
    elif breakage == "bff without the origin secret":
        res["OrchestratorFunction"]["Properties"]["Environment"]["Variables"].pop("ORIGIN_VERIFY_SECRET_ID")
    elif breakage == "no viewer address":
        distribution["DefaultCacheBehavior"].pop("FunctionAssociations")
    elif breakage == "no waf rule":
        res["EdgeWebAcl"]["Properties"]["Rules"] = res["EdgeWebAcl"]["Properties"]["Rules"][1:]
    elif breakage == "no route throttle":
        res["HttpApi"]["Properties"].pop("RouteSettings")
    elif breakage == "looser login":
        broken["Parameters"]["LoginThrottlingRateLimit"]["Default"] = 500
    else:
        res["OrchestratorFunction"]["Properties"]["Events"].pop("Login")
    assert edge_problems(broken)


# --- the deploy workflow's order -----------------------------------------------------------------


def deploy_order_problems(workflow: dict) -> list[str]:
    """Each deploy job: image repositories, images, sam deploy with the migration image only,
    the migration tasks, then sam deploy with the services' image."""
    problems = []
    for job_name, job in workflow["jobs"].items():
        runs = [str(step.get("run", "")) for step in job.get("steps", [])]

        def first(pattern: str, runs=runs) -> int:
            return next((i for i, text in enumerate(runs) if re.search(pattern, text, re.S)), -1)

        order = [
            ("image repositories", first(r"cloudformation deploy.*deploy/cloudformation/ecr\.yaml")),
            ("image push", first(r"docker push")),
            (
                "sam deploy with the migration image",
                first(r"sam deploy(?:(?!ServiceImageTag).)*MigrationImageTag=\$IMAGE_TAG(?:(?!ServiceImageTag).)*$"),
            ),
            ("migrations", first(r"scripts/run_migrations\.py")),
            ("sam deploy with the services' image", first(r"sam deploy.*ServiceImageTag=\$IMAGE_TAG")),
        ]
        missing = [what for what, index in order if index < 0]
        if missing:
            problems.append(f"{job_name}: missing {missing}")
        elif [index for _, index in order] != sorted(index for _, index in order):
            problems.append(f"{job_name}: steps out of order {[what for what, _ in sorted(order, key=lambda o: o[1])]}")
    return problems


def test_the_deploy_workflow_migrates_before_the_services_roll():
    workflow = yaml.safe_load((WORKFLOWS_DIR / "deploy.yml").read_text())
    assert set(workflow["jobs"]) == {"staging", "production"}
    assert deploy_order_problems(workflow) == []


def test_deploy_order_check_catches_mistakes():
    workflow = yaml.safe_load((WORKFLOWS_DIR / "deploy.yml").read_text())
    steps = workflow["jobs"]["production"]["steps"]
    migrations = next(i for i, s in enumerate(steps) if "run_migrations" in str(s.get("run")))
    steps.append(steps.pop(migrations))  # migrations after the services rolled
    workflow["jobs"]["staging"]["steps"] = [
        s for s in workflow["jobs"]["staging"]["steps"] if "docker push" not in str(s.get("run"))
    ]
    problems = deploy_order_problems(workflow)
    assert len(problems) == 2, problems
