#!/usr/bin/env python3
"""A stand-in for certbot, used by tests/it/certificates.rs.

Let's Encrypt cannot be reached from the tests, so this does locally what
certbot and the ACME server would do, and records what it saw in
$FAKE_CERTBOT_DIR:

- `args`: its arguments, one per line, appended (a second call shows up as
  extra lines); `cwd`: the directory it ran in.
- `events.jsonl`: one JSON object per observation:
  - webroot mode (`--webroot`): for each domain it writes a challenge file
    under `<--webroot-path>/.well-known/acme-challenge/`, fetches it over
    plain http from the frontend proxy (port $FAKE_CERTBOT_HTTP_PORT, Host:
    the domain) as the ACME server would, records the answer and removes
    the file: {"challenge": "http-01", "domain", "token", "expected",
    "status", "body"}.
  - manual mode (`--manual`, DNS-01): for each domain it runs the
    `--manual-auth-hook` command with `sh -c`, CERTBOT_DOMAIN and
    CERTBOT_VALIDATION set, then lists the TXT records of the Route53 zone
    $FAKE_CERTBOT_ZONE (endpoint $AWS_ENDPOINT_URL): {"hook": "auth",
    "domain", "validation", "exit", "stderr", "txt": [{"name", "ttl",
    "values"}]}; then it runs `--manual-cleanup-hook` the same way for each
    domain and lists again ({"hook": "cleanup", ...}).
  - `--deploy-hook`, run with `sh -c` once the certificate is written:
    {"hook": "deploy", "command", "exit"}.

It then writes a self-signed certificate for the first domain (CN=<it>) as
`<--config-dir>/live/<--cert-name, else the first domain>/fullchain.pem`
and `privkey.pem`. A failing hook or challenge makes it exit 1, as certbot
would.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

OUT = os.environ["FAKE_CERTBOT_DIR"]
ARGS = sys.argv[1:]


def record_args():
    with open(os.path.join(OUT, "args"), "a") as f:
        for arg in ARGS:
            f.write(arg + "\n")
    with open(os.path.join(OUT, "cwd"), "w") as f:
        f.write(os.getcwd())


def event(**fields):
    with open(os.path.join(OUT, "events.jsonl"), "a") as f:
        f.write(json.dumps(fields) + "\n")


def option(name):
    """The value after `name`, if given."""
    for i, arg in enumerate(ARGS[:-1]):
        if arg == name:
            return ARGS[i + 1]
    return None


def domains():
    """Every `-d` value, comma-separated lists split, in order."""
    names = []
    for i, arg in enumerate(ARGS[:-1]):
        if arg == "-d":
            names.extend(n for n in ARGS[i + 1].split(",") if n)
    return names


def token_for(domain):
    """A deterministic ACME-like token (43 base64url characters)."""
    digest = hashlib.sha256(("fake-certbot " + domain).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def http01(names):
    webroot = option("--webroot-path")
    port = os.environ["FAKE_CERTBOT_HTTP_PORT"]
    challenge_dir = os.path.join(webroot, ".well-known", "acme-challenge")
    os.makedirs(challenge_dir, exist_ok=True)
    ok = True
    for domain in names:
        token = token_for(domain)
        expected = token + ".fake-account-thumbprint"
        path = os.path.join(challenge_dir, token)
        with open(path, "w") as f:
            f.write(expected)
        os.chmod(path, 0o644)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/.well-known/acme-challenge/{token}",
            headers={"Host": domain},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, body = response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read().decode(errors="replace")
        except OSError as e:
            status, body = 0, str(e)
        os.remove(path)
        event(
            challenge="http-01",
            domain=domain,
            token=token,
            expected=expected,
            status=status,
            body=body,
        )
        ok = ok and status == 200 and body == expected
    return ok


def txt_records(zone):
    import boto3

    client = boto3.client(
        "route53",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )
    records = []
    for page in client.get_paginator("list_resource_record_sets").paginate(
        HostedZoneId=zone
    ):
        for rrset in page["ResourceRecordSets"]:
            if rrset["Type"] == "TXT":
                records.append(
                    {
                        "name": rrset["Name"],
                        "ttl": rrset.get("TTL"),
                        "values": [r["Value"] for r in rrset["ResourceRecords"]],
                    }
                )
    return records


def run_hook(kind, command, domain, validation, remaining, names, zone, extra):
    env = dict(os.environ)
    env.update(
        CERTBOT_DOMAIN=domain,
        CERTBOT_VALIDATION=validation,
        CERTBOT_REMAINING_CHALLENGES=str(remaining),
        CERTBOT_ALL_DOMAINS=",".join(names),
        **extra,
    )
    done = subprocess.run(
        ["sh", "-c", command], env=env, capture_output=True, text=True
    )
    event(
        hook=kind,
        domain=domain,
        validation=validation,
        exit=done.returncode,
        stderr=done.stderr,
        txt=txt_records(zone),
    )
    return done


def dns01(names):
    zone = os.environ["FAKE_CERTBOT_ZONE"]
    auth = option("--manual-auth-hook")
    cleanup = option("--manual-cleanup-hook")
    ok = True
    outputs = {}
    for i, domain in enumerate(names):
        done = run_hook(
            "auth", auth, domain, token_for(domain), len(names) - i - 1, names, zone, {}
        )
        outputs[domain] = done.stdout
        ok = ok and done.returncode == 0
    if cleanup:
        for i, domain in enumerate(names):
            extra = {"CERTBOT_AUTH_OUTPUT": outputs[domain]}
            done = run_hook(
                "cleanup",
                cleanup,
                domain,
                token_for(domain),
                len(names) - i - 1,
                names,
                zone,
                extra,
            )
            ok = ok and done.returncode == 0
    return ok


def write_certificate(names):
    config_dir = option("--config-dir") or "/etc/letsencrypt"
    lineage = os.path.join(config_dir, "live", option("--cert-name") or names[0])
    os.makedirs(lineage, exist_ok=True)
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-days", "1", "-subj", "/CN=" + names[0],
            "-keyout", os.path.join(lineage, "privkey.pem"),
            "-out", os.path.join(lineage, "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
    )
    return lineage


def main():
    record_args()
    names = domains()
    if not names:
        print("fake certbot: no -d given", file=sys.stderr)
        return 1
    if "--manual" in ARGS:
        ok = dns01(names)
    elif "--webroot" in ARGS:
        ok = http01(names)
    else:
        print("fake certbot: neither --manual nor --webroot", file=sys.stderr)
        return 1
    if not ok:
        print("fake certbot: a challenge failed (see events.jsonl)", file=sys.stderr)
        return 1
    lineage = write_certificate(names)
    hook = option("--deploy-hook")
    if hook:
        env = dict(os.environ, RENEWED_LINEAGE=lineage, RENEWED_DOMAINS=" ".join(names))
        done = subprocess.run(["sh", "-c", hook], env=env)
        event(hook="deploy", command=hook, exit=done.returncode)
        if done.returncode != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
