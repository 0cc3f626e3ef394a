#!/usr/bin/env python3
"""Generates tests/data/pii_heldout.jsonl, a held-out corpus for the PII redactor.

This file shares nothing with gen_corpus.py: its lines were written from the
shapes personal data takes in real traffic (access logs, syslog, JSON logs,
stack traces, config dumps, network-device output, URLs, e-mail headers,
SEPA and payment payloads, chat text in several languages), without looking at
how the redactor works, so that it measures the redactor instead of echoing it.

Deterministic: the same seed always gives the same file.

Every value is synthetic. E-mail domains are example.* or made-up company
names, US phones use the 555-01xx block, UK phones the Ofcom drama ranges,
cards/IBANs/SSNs are random numbers made valid by their check rules, IPv4
addresses come mostly from documentation and private ranges, and secrets are
random strings in the providers' shapes.

Lines are written with two kinds of marks:
  [[TYPE:value]]  a literal value, labelled TYPE;
  {gen}           a generated value (see GENERATORS), labelled by its generator.
Each line is {"text": ..., "entities": [{"type": ..., "value": ...}, ...]};
an entity is listed once per occurrence, with its exact text. Lines without
marks are PII-free, and many of them are chosen to look close to PII.

Labelling rules, decided before scoring:
  - Every IPv4 or IPv6 literal is an IP_ADDRESS, private, loopback, network
    and netmask addresses included, because the redactor cannot know which
    ones identify a person. Version numbers are not, even when they have four
    parts that are all below 256 (`Chrome/120.0.0.0`).
  - A MAC address is labelled in every notation: colon, dash, Cisco dotted,
    and 12 bare hex digits next to a word that says it is a MAC. Twelve hex
    digits without such a word (a container id, a UUID's last group) are not.
  - SECRET covers credentials only: the value of a password, token, API key or
    private key, and the user:password pair in a URL. Public keys, hashes,
    digests and placeholders such as ${DB_PASSWORD} are not secrets.
  - SSN is the US Social Security Number only.
"""

import json
import random
import re
import string
import sys

SEED = 20261207
rng = random.Random(SEED)


# ---------------------------------------------------------------- values


def luhn_complete(prefix, length):
    digits = [int(c) for c in prefix]
    while len(digits) < length - 1:
        digits.append(rng.randrange(10))
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    digits.append((10 - total % 10) % 10)
    return "".join(map(str, digits))


def luhn_ok(number):
    total = 0
    for i, c in enumerate(reversed(number)):
        d = int(c)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


CARD_BRANDS = [
    # prefix choices, length, grouping
    (["4"], 16, (4, 4, 4, 4)),
    (["51", "52", "53", "54", "55", "2221", "2720", "2342"], 16, (4, 4, 4, 4)),
    (["34", "37"], 15, (4, 6, 5)),
    (["6011", "65", "644"], 16, (4, 4, 4, 4)),
    (["3528", "3589"], 16, (4, 4, 4, 4)),
    (["36", "38"], 14, (4, 6, 4)),
    (["62"], 19, (4, 4, 4, 4, 3)),
    (["4"], 13, (4, 4, 5)),
]


def card_digits():
    prefixes, length, groups = rng.choice(CARD_BRANDS)
    return luhn_complete(rng.choice(prefixes), length), groups


def group(number, groups, sep):
    out, i = [], 0
    for g in groups:
        out.append(number[i : i + g])
        i += g
    return sep.join(out)


def card(sep):
    number, groups = card_digits()
    if sep is None:
        return number
    return group(number, groups, sep)


def not_luhn(length):
    while True:
        n = str(rng.randrange(1, 10)) + "".join(
            str(rng.randrange(10)) for _ in range(length - 1)
        )
        if not luhn_ok(n):
            return n


# Country: (length, BBAN pattern) where n = digit, a = upper letter, c = alnum.
IBAN_FORMATS = {
    "DE": "18n",
    "GB": "4a14n",
    "FR": "10n11c2n",
    "ES": "20n",
    "IT": "1a10n12c",
    "NL": "4a10n",
    "BE": "12n",
    "CH": "5n12c",
    "AT": "16n",
    "PL": "24n",
    "SE": "20n",
    "NO": "11n",
    "DK": "14n",
    "FI": "14n",
    "IE": "4a14n",
    "PT": "21n",
    "LU": "3n13c",
    "AE": "3n16n",
    "TR": "5n1n16c",
    "SA": "2n18c",
    "BR": "23n1a1c",
    "GR": "7n16c",
    "CZ": "20n",
    "RO": "4a16c",
    "HU": "24n",
    "LT": "16n",
    "MT": "4a5n18c",
}


def bban(pattern):
    out = []
    for count, kind in re.findall(r"(\d+)([nac])", pattern):
        for _ in range(int(count)):
            if kind == "n":
                out.append(rng.choice(string.digits))
            elif kind == "a":
                out.append(rng.choice(string.ascii_uppercase))
            else:
                out.append(rng.choice(string.digits + string.ascii_uppercase))
    return "".join(out)


def iban_compact(country=None):
    country = country or rng.choice(list(IBAN_FORMATS))
    body = bban(IBAN_FORMATS[country])
    rearranged = body + country + "00"
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{body}"


def iban_spaced(country=None):
    s = iban_compact(country)
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


def ssn(sep="-"):
    while True:
        area = rng.randrange(1, 900)
        if area != 666:
            break
    grp = rng.randrange(1, 100)
    serial = rng.randrange(1, 10000)
    return f"{area:03d}{sep}{grp:02d}{sep}{serial:04d}"


def ipv4_doc():
    return rng.choice(["192.0.2.", "198.51.100.", "203.0.113."]) + str(rng.randrange(1, 255))


def ipv4_private():
    kind = rng.randrange(3)
    if kind == 0:
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if kind == 1:
        return f"172.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def ipv4_public():
    # Plausible public unicast addresses; none of them need to exist.
    while True:
        a = rng.randrange(1, 224)
        if a not in (10, 127, 169, 172, 192, 100):
            break
    return f"{a}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def ipv4_any():
    return rng.choice([ipv4_doc, ipv4_private, ipv4_public])()


def h16():
    return format(rng.randrange(0x10000), "x")


def ipv6_full():
    return "2001:db8:" + ":".join(format(rng.randrange(0x10000), "04x") for _ in range(6))


def ipv6_compressed():
    shape = rng.randrange(4)
    if shape == 0:
        return f"2001:db8::{h16()}"
    if shape == 1:
        return f"2001:db8:{h16()}::{h16()}:{h16()}"
    if shape == 2:
        return f"2a02:{h16()}:{h16()}:{h16()}::{h16()}"
    return f"fe80::{h16()}:{h16()}:{h16()}:{h16()}"


def mac_bytes():
    b = [rng.randrange(256) for _ in range(6)]
    b[0] &= 0xFE
    return b


def mac(notation):
    b = mac_bytes()
    hexes = [format(x, "02x") for x in b]
    if notation == "colon":
        return ":".join(hexes)
    if notation == "COLON":
        return ":".join(hexes).upper()
    if notation == "dash":
        return "-".join(hexes).upper()
    if notation == "dashlower":
        return "-".join(hexes)
    if notation == "cisco":
        s = "".join(hexes)
        return ".".join(s[i : i + 4] for i in range(0, 12, 4))
    if notation == "bare":
        return "".join(hexes)
    if notation == "BARE":
        return "".join(hexes).upper()
    raise ValueError(notation)


FIRST = ["maria", "li", "oliver", "fatima", "kenji", "sofia", "arjun", "chloe",
         "mateo", "ingrid", "tunde", "ana", "pierre", "yara", "noah", "mei"]
LAST = ["garcia", "wang", "smith", "haddad", "tanaka", "rossi", "patel", "martin",
        "lopez", "berg", "adeyemi", "silva", "dubois", "nasser", "keller", "chen"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.co.uk",
           "corp.example.de", "example.io", "students.example.edu", "example.fr",
           "acme-widgets.example", "eu.example.com"]


def email():
    f, l = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice([f"{f}.{l}", f"{f}{l}", f"{f[0]}{l}", f"{f}_{l}",
                        f"{f}.{l}{rng.randrange(1, 99)}", f"{f}+{rng.choice(['news', 'billing', 'test'])}",
                        f"{f}-{l}", f"{l}.{f}"])
    return f"{local}@{rng.choice(DOMAINS)}"


ALNUM = string.ascii_letters + string.digits


def rand(n, alphabet=ALNUM):
    return "".join(rng.choice(alphabet) for _ in range(n))


def hexs(n):
    return rand(n, "0123456789abcdef")


def b64(n):
    return rand(n, ALNUM + "+/")


def b64url(n):
    return rand(n, ALNUM + "-_")


def jwt():
    header = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6I" + b64url(10)
    payload = "eyJ" + b64url(rng.randrange(60, 120))
    return f"{header}.{payload}.{b64url(rng.randrange(40, 86))}"


def password():
    words = ["Summer", "Tr0ub4dor", "correct", "Horse", "Pa55", "Winter", "letmein",
             "Dragon", "Qwerty", "Monkey", "Sunshine", "Passw0rd"]
    tail = rand(rng.randrange(2, 6), string.digits + "!*_.-")
    return rng.choice(words) + rng.choice(["", "-", "_", "."]) + rand(3) + tail


SECRET_SHAPES = {
    "openai": lambda: "sk-proj-" + b64url(rng.randrange(48, 80)),
    "openai_old": lambda: "sk-" + rand(48),
    "anthropic": lambda: "sk-ant-api03-" + b64url(93) + "AA",
    "github": lambda: "ghp_" + rand(36),
    "github_fine": lambda: "github_pat_" + rand(22) + "_" + rand(59),
    "gitlab": lambda: "glpat-" + b64url(20),
    "slack_bot": lambda: f"xoxb-{rng.randrange(10**11, 10**12)}-{rng.randrange(10**12, 10**13)}-{rand(24)}",
    "stripe": lambda: "sk_live_" + rand(rng.randrange(24, 99)),
    "stripe_test": lambda: "sk_test_" + rand(rng.randrange(24, 99)),
    "aws_id": lambda: rng.choice(["AKIA", "ASIA"]) + rand(16, string.ascii_uppercase + "234567"),
    "aws_secret": lambda: b64(40),
    "google": lambda: "AIza" + b64url(35),
    "hf": lambda: "hf_" + rand(34, string.ascii_letters),
    "npm": lambda: "npm_" + rand(36),
    "sendgrid": lambda: "SG." + b64url(22) + "." + b64url(43),
    "twilio": lambda: "SK" + hexs(32),
    "digitalocean": lambda: "dop_v1_" + hexs(64),
    "pypi": lambda: "pypi-AgEIcHlwaS5vcmc" + b64url(rng.randrange(60, 120)),
    "shopify": lambda: "shpat_" + hexs(32),
    "hex32": lambda: hexs(32),
    "hex64": lambda: hexs(64),
    "jwt": jwt,
    "password": password,
}


def pem(kind):
    lines = [b64(64) for _ in range(rng.randrange(3, 7))] + [b64(rng.randrange(8, 60)) + "=="]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"


def basic_auth():
    import base64

    user = rng.choice(FIRST)
    return base64.b64encode(f"{user}:{password()}".encode()).decode()


# A generator returns (text, label) where label is None for unlabelled text.
GENERATORS = {
    "email": lambda: (email(), "EMAIL"),
    "email_pct": lambda: (email().replace("@", "%40"), "EMAIL"),
    "email_upper": lambda: (email().title(), "EMAIL"),
    "card": lambda: (card(" "), "CREDIT_CARD"),
    "card_dash": lambda: (card("-"), "CREDIT_CARD"),
    "card_plain": lambda: (card(None), "CREDIT_CARD"),
    "not_luhn16": lambda: (not_luhn(16), None),
    "not_luhn19": lambda: (not_luhn(19), None),
    "iban": lambda: (iban_compact(), "IBAN"),
    "iban_spaced": lambda: (iban_spaced(), "IBAN"),
    "iban_de": lambda: (iban_spaced("DE"), "IBAN"),
    "iban_gb": lambda: (iban_compact("GB"), "IBAN"),
    "iban_fr": lambda: (iban_spaced("FR"), "IBAN"),
    "iban_nl": lambda: (iban_compact("NL"), "IBAN"),
    "ssn": lambda: (ssn("-"), "SSN"),
    "ssn_space": lambda: (ssn(" "), "SSN"),
    "ssn_plain": lambda: (ssn(""), "SSN"),
    "ip": lambda: (ipv4_any(), "IP_ADDRESS"),
    "ip_doc": lambda: (ipv4_doc(), "IP_ADDRESS"),
    "ip_priv": lambda: (ipv4_private(), "IP_ADDRESS"),
    "ip_pub": lambda: (ipv4_public(), "IP_ADDRESS"),
    "ip6": lambda: (ipv6_full(), "IP_ADDRESS"),
    "ip6c": lambda: (ipv6_compressed(), "IP_ADDRESS"),
    "mac": lambda: (mac("colon"), "MAC_ADDRESS"),
    "mac_up": lambda: (mac("COLON"), "MAC_ADDRESS"),
    "mac_dash": lambda: (mac("dash"), "MAC_ADDRESS"),
    "mac_dashlower": lambda: (mac("dashlower"), "MAC_ADDRESS"),
    "mac_cisco": lambda: (mac("cisco"), "MAC_ADDRESS"),
    "mac_bare": lambda: (mac("bare"), "MAC_ADDRESS"),
    "mac_BARE": lambda: (mac("BARE"), "MAC_ADDRESS"),
    "pem_rsa": lambda: (pem("RSA PRIVATE KEY"), "SECRET"),
    "pem_pkcs8": lambda: (pem("PRIVATE KEY"), "SECRET"),
    "pem_openssh": lambda: (pem("OPENSSH PRIVATE KEY"), "SECRET"),
    "pem_pgp": lambda: (pem("PGP PRIVATE KEY BLOCK"), "SECRET"),
    "basic": lambda: (basic_auth(), "SECRET"),
    # Unlabelled fillers that look close to PII.
    "hex12": lambda: (hexs(12), None),
    "sha1": lambda: (hexs(40), None),
    "sha7": lambda: (hexs(7), None),
    "sha256": lambda: (hexs(64), None),
    "uuid": lambda: ("-".join([hexs(8), hexs(4), "4" + hexs(3), rng.choice("89ab") + hexs(3), hexs(12)]), None),
    "port": lambda: (str(rng.randrange(1024, 65535)), None),
    "pid": lambda: (str(rng.randrange(100, 99999)), None),
    "ms": lambda: (str(rng.randrange(1, 9999)), None),
    "bytes": lambda: (str(rng.randrange(100, 999999)), None),
    "ts": lambda: (str(rng.randrange(1_600_000_000, 1_800_000_000)), None),
    "ts_ms": lambda: (str(rng.randrange(1_600_000_000_000, 1_800_000_000_000)), None),
    "ts_ns": lambda: (str(rng.randrange(1_600_000_000 * 10**9, 1_800_000_000 * 10**9)), None),
    "order": lambda: (str(rng.randrange(10**7, 10**10)), None),
}
for _name in SECRET_SHAPES:
    GENERATORS["s_" + _name] = (lambda n: lambda: (SECRET_SHAPES[n](), "SECRET"))(_name)

GEN = re.compile(r"\{([a-z][a-zA-Z_0-9]*)\}")
MARK = re.compile(r"\[\[([A-Z_]+):(.*?)\]\]|\{([a-z][a-zA-Z_0-9]*)\}", re.S)


def render(template):
    entities, out, pos = [], [], 0
    for m in MARK.finditer(template):
        out.append(template[pos : m.start()])
        pos = m.end()
        if m.group(1):
            # A literal mark may hold generators; the mark's own label wins.
            value, _ = render(m.group(2))
            label = m.group(1)
        else:
            name = m.group(3)
            if name not in GENERATORS:
                raise KeyError(f"unknown generator {name!r} in {template!r}")
            value, label = GENERATORS[name]()
        out.append(value)
        if label:
            entities.append({"type": label, "value": value})
    out.append(template[pos:])
    return "".join(out), entities


# ---------------------------------------------------------------- lines
# Each entry is (times, template). Templates with generators are rendered
# `times` times with fresh values; literal-only templates once.

T = []


def add(template, times=1):
    T.append((times, template))


# --- URLs and paths
add("GET https://app.example.com/api/users/{email}/preferences HTTP/1.1", 2)
add("https://shop.example.com/account/unsubscribe?email={email_pct}&list=weekly", 3)
add("https://shop.example.com/account/unsubscribe?email={email}&list=weekly", 2)
add("Redirecting to /login?next=%2Fsettings&login_hint={email_pct}", 2)
add("<a href=\"mailto:{email}?subject=Refund%20request\">contact billing</a>", 2)
add("git clone https://[[SECRET:oauth2:{s_gitlab}]]@gitlab.example.com/group/project.git")
add("git remote set-url origin https://[[SECRET:x-access-token:{s_github}]]@github.com/acme/api.git")
add("https://api.example.com/v1/search?q=shoes&api_key={s_hex32}&page=2", 2)
add("https://maps.example.com/staticmap?center=48.8584,2.2945&zoom=15&key={s_google}")
add("wss://stream.example.com/socket?access_token={s_jwt}")
add("callback: https://app.example.com/oauth/callback#access_token={s_jwt}&token_type=Bearer&expires_in=3600")
add("DATABASE_URL=postgres://[[SECRET:app_rw:{s_password}]]@{ip_priv}:5432/orders", 2)
add("REDIS_URL=redis://default:{s_hex32}@cache.internal.example:6379/0")
add("amqp://[[SECRET:guest:guest]]@rabbitmq:5672/")
add("mongodb+srv://[[SECRET:svc-reporting:{s_password}]]@cluster0.ab1cd.mongodb.net/prod?retryWrites=true")
add("Fetching http://{ip_pub}:8080/metrics failed: connection refused", 2)
add("proxy set to http://[[SECRET:jdoe:{s_password}]]@{ip_priv}:3128", 1)
add("curl https://api.acme.dev/v2/me returns 403 from {ip_priv}", 2)
add("curl -s https://api.example.com/v3/orders/{order} -H 'X-Forwarded-For: {ip_pub}'", 2)
add("curl -u [[SECRET:admin:{s_password}]] https://jenkins.example.com/api/json")
add("curl -H \"Authorization: Bearer {s_openai}\" https://api.openai.com/v1/models")
add("curl https://api.anthropic.com/v1/messages -H \"x-api-key: {s_anthropic}\" -H \"anthropic-version: 2023-06-01\"")
add("curl -X POST https://api.stripe.com/v1/charges -u {s_stripe}: -d amount=2000 -d currency=eur")
add("Open https://example.com/v1.2/docs/install and http://{ip_doc}/v1/status side by side.")
add("The file is at /home/{email}/downloads/report.pdf on the shared box", 1)
add("s3://backups-prod/users/{order}/export.csv (owner {email})")
add("See https://github.com/acme/widgets/blob/{sha1}/src/main.rs#L42 for the change.")
add("https://example.com/releases/download/v2.14.0/widgets-2.14.0-x86_64.tar.gz")
add("http://localhost:3000/api/v1/items?limit=50&offset=100")
add("https://docs.example.com/en/3.12/library/ipaddress.html")
add("https://cdn.example.net/assets/app.3f9a1c2b.js?v=1.4.2")

# --- access logs
UA = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
]
for ua in UA:
    add('{ip_pub} - - [06/May/2024:14:03:22 +0000] "GET /api/v2/products?page=3 HTTP/1.1" 200 {bytes} "-" "' + ua + '"')
add('{ip_pub} - [[EMAIL:{email}]] [12/Mar/2024:09:15:41 +0100] "POST /login HTTP/2.0" 302 0 "https://example.com/" "curl/7.88.1"')
add('{ip_doc} - - [12/Mar/2024:09:15:41 +0100] "GET /reset?email={email_pct} HTTP/1.1" 200 1532', 2)
add('[Tue May 07 11:22:33.123456 2024] [proxy:error] [pid {pid}:tid {pid}] (111)Connection refused: AH00957: http: attempt to connect to {ip_priv}:8080 (backend) failed')
add('[Tue May 07 11:22:34 2024] [client {ip_pub}:{port}] AH01630: client denied by server configuration: /var/www/html/.git')
add('{"time":"2024-05-06T14:03:22.512Z","level":"info","msg":"request","method":"GET","path":"/v1/chat/completions","status":200,"remote_addr":"{ip_pub}","duration_ms":{ms}}', 3)
add('{"ts":1714989802.123,"level":"warn","event":"login_failed","user":"{email}","ip":"{ip6c}","attempt":3}', 2)
add('{"level":"error","caller":"payment/charge.go:88","msg":"card declined","card":"{card_plain}","amount":1999,"currency":"USD"}', 2)
add('level=info ts=2024-05-06T14:03:22.512Z caller=main.go:123 msg="listening" addr={ip_priv}:9090 version=2.51.2')
add('time="2024-05-06T14:03:22Z" level=warning msg="retrying" peer="[{ip6c}]:7946" attempt=2')
add('2024-05-06 14:03:22,512 INFO  [http-nio-8080-exec-7] c.e.a.UserController - updated profile for user={email} from ip={ip_pub}', 2)
add('2024-05-06T14:03:22.512+02:00 WARN 4412 --- [main] o.s.b.w.e.tomcat.TomcatWebServer : Tomcat started on port(s): 8080 (http) with context path \'\'')
add('X-Forwarded-For: {ip_pub}, {ip_priv}, {ip_priv}')
add('X-Real-IP: {ip6c}')
add('Forwarded: for="[{ip6c}]:4711";proto=https;by={ip_doc}')
add('CF-Connecting-IP: {ip_pub}')
add('request_id={uuid} upstream={ip_priv}:8000 upstream_status=502 request_time=0.{ms}', 2)

# --- syslog and auth logs
add('May  6 14:03:22 web01 sshd[{pid}]: Failed password for invalid user admin from {ip_pub} port {port} ssh2', 3)
add('May  6 14:03:25 web01 sshd[{pid}]: Accepted publickey for deploy from {ip_priv} port {port} ssh2: ED25519 SHA256:' + b64(43))
add('May  6 14:05:01 mail postfix/smtp[{pid}]: 4F2A31C0B2: to=<{email}>, relay=mx1.example.net[{ip_doc}]:25, delay=0.42, status=sent (250 2.0.0 OK)', 2)
add('May  6 14:05:01 mail postfix/smtpd[{pid}]: connect from unknown[{ip_pub}]')
add('May  6 14:06:11 gw kernel: [UFW BLOCK] IN=eth0 OUT= MAC={mac}:{mac}:08:00 SRC={ip_pub} DST={ip_priv} LEN=60 TOS=0x00 PROTO=TCP SPT={port} DPT=22')
add('May  6 14:07:42 fw01 dhcpd[{pid}]: DHCPACK on {ip_priv} to {mac} (laptop-maria) via eth1', 2)
add('May  6 14:07:40 fw01 dhcpd[{pid}]: DHCPDISCOVER from {mac} via eth1')
add('<134>1 2024-05-06T14:03:22.512Z host01 nginx {pid} - - upstream timed out while connecting to upstream, client: {ip_pub}, server: api.example.com')
add('Jan 12 03:14:07 nas smbd[{pid}]: {ip_priv} (ipv4:{ip_priv}:{port}) connect to service homes initially as user maria')
add('May  6 14:03:22 web01 CRON[{pid}]: (root) CMD (/usr/local/bin/backup.sh --since 2024-05-05)')
add('May  6 14:03:22 web01 systemd[1]: Started Session 4213 of User deploy.')
add('fail2ban.actions [{pid}]: NOTICE [sshd] Ban {ip_pub}', 2)
add('audit: type=USER_LOGIN msg=audit(1714989802.512:8812): pid={pid} uid=0 auid=1000 ses=12 addr={ip_doc} terminal=ssh res=failed')

# --- stack traces and errors
add('Traceback (most recent call last):\n  File "/app/handlers.py", line 88, in send_invoice\n    smtp.sendmail(sender, [to], body)\nsmtplib.SMTPRecipientsRefused: {\'[[EMAIL:{email}]]\': (550, b\'5.1.1 User unknown\')}')
add('psycopg2.OperationalError: connection to server at "{ip_priv}", port 5432 failed: FATAL:  password authentication failed for user "reporting"')
add('java.net.ConnectException: Connection refused (Connection refused)\n\tat java.base/sun.nio.ch.Net.connect0(Native Method)\n\tat org.example.Client.connect(Client.java:57) -- remote {ip_priv}:9042')
add('Error: connect ECONNREFUSED {ip_priv}:6379\n    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)', 2)
add('Error: getaddrinfo ENOTFOUND api.example.com\n    at GetAddrInfoReqWrap.onlookup [as oncomplete] (node:dns:107:26)')
add('thread \'tokio-runtime-worker\' panicked at src/store/sqlite.rs:212:14:\ncalled `Result::unwrap()` on an `Err` value: Io(Os { code: 111, kind: ConnectionRefused })')
add('Caused by: javax.mail.SendFailedException: Invalid Addresses; nested exception is: com.sun.mail.smtp.SMTPAddressFailedException: 550 5.1.1 <{email}>: Recipient address rejected')
add('ValueError: invalid literal for int() with base 10: \'4111-1111\'')
add('KeyError: \'email\' (payload had keys: name, phone, address)')
add('dial tcp [{ip6c}]:443: connect: network is unreachable', 2)
add('dial tcp {ip_pub}:443: i/o timeout', 2)
add('django.db.utils.IntegrityError: duplicate key value violates unique constraint "users_email_key"\nDETAIL:  Key (email)=({email}) already exists.')
add('stripe.error.CardError: Your card was declined. (card {card}, decline_code=insufficient_funds)')
add('panic: runtime error: index out of range [5] with length 5\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:14 +0x1d')
add('at Object.<anonymous> (/srv/app/node_modules/@types/node@18.11.9/index.js:12:5)')
add('  File "/usr/lib/python3.11/site-packages/urllib3/connectionpool.py", line 793, in urlopen')
add('Segmentation fault (core dumped) at 0x00007f3a2c1d4e80 in libssl.so.3')

# --- config dumps
add('# .env\nNODE_ENV=production\nPORT=8080\nDB_HOST={ip_priv}\nDB_USER=app\nDB_PASSWORD={s_password}\nSTRIPE_SECRET_KEY={s_stripe}', 2)
add('OPENAI_API_KEY={s_openai}\nOPENAI_ORG=org-Abc123')
add('export ANTHROPIC_API_KEY={s_anthropic}')
add('export HF_TOKEN={s_hf}')
add('export AWS_ACCESS_KEY_ID={s_aws_id}\nexport AWS_SECRET_ACCESS_KEY={s_aws_secret}\nexport AWS_DEFAULT_REGION=eu-west-1', 2)
add('//registry.npmjs.org/:_authToken={s_npm}')
add('SENDGRID_API_KEY="{s_sendgrid}"')
add('TWILIO_API_KEY={s_twilio}\nTWILIO_ACCOUNT_SID=AC' + hexs(32) + '')
add('DIGITALOCEAN_TOKEN={s_digitalocean}')
add('[pypi]\n  username = __token__\n  password = {s_pypi}')
add('SHOPIFY_ACCESS_TOKEN={s_shopify}')
add('database:\n  host: {ip_priv}\n  port: 5432\n  user: orders\n  password: "{s_password}"\n  pool_size: 20', 2)
add('smtp:\n  server: smtp.example.com\n  username: {email}\n  password: {s_password}\n  starttls: true', 2)
add('auth:\n  jwt_secret: {s_hex64}\n  token_ttl: 3600s')
add('spring.datasource.url=jdbc:mysql://{ip_priv}:3306/shop\nspring.datasource.username=shop\nspring.datasource.password={s_password}')
add('[database]\nhost = "{ip_priv}"\nport = 5432\npassword = "{s_password}"\nmax_connections = 64')
add('[slack]\ntoken = "{s_slack_bot}"\nchannel = "#alerts"')
add('apiVersion: v1\nkind: Secret\nmetadata:\n  name: api-keys\nstringData:\n  OPENAI_API_KEY: {s_openai_old}\n  GITHUB_TOKEN: {s_github}')
add('client_id: 0oa1b2c3d4e5f6g7h8i9\nclient_secret: {s_b64url40}'.replace("{s_b64url40}", "[[SECRET:" + b64url(40) + "]]"))
add('mysql -h {ip_priv} -u root -p[[SECRET:{s_password}]] shop < dump.sql'.replace("[[SECRET:{s_password}]]", "{s_password}"))
add('PGPASSWORD={s_password} psql -h {ip_priv} -U analytics -d warehouse')
add('docker login -u ci-bot -p {s_github} ghcr.io')
add('Authorization: Basic {basic}', 2)
add('Authorization: Bearer {s_jwt}', 2)
add('Cookie: _ga=GA1.2.1234567890.1714989802; sessionid={s_hex32}; theme=dark')
add('X-Api-Key: {s_hex32}')
add('Here is my key, it fails to parse:\n{pem_rsa}')
add('id_ed25519 contents:\n{pem_openssh}')
add('tls:\n  cert_file: /etc/ssl/certs/api.pem\n  key: |\n{pem_pkcs8}'.replace("{pem_pkcs8}", "{pem_pkcs8}"))
add('gpg --import <<EOF\n{pem_pgp}\nEOF')
add('hooks: https://hooks.slack.com/services/[[SECRET:T0' + rand(8, string.ascii_uppercase + string.digits) + '/B0' + rand(8, string.ascii_uppercase + string.digits) + '/' + rand(24) + ']]')
add('DISCORD_WEBHOOK=https://discord.com/api/webhooks/1234567890123456789/[[SECRET:' + b64url(68) + ']]')
# Config that carries no secret.
add('database:\n  host: db.internal\n  port: 5432\n  password: ${DB_PASSWORD}\n  sslmode: require')
add('OPENAI_API_KEY=<your-api-key-here>')
add('api_key: YOUR_API_KEY\ntimeout: 30s\nretries: 3')
add('password = ""  # set via the PASSWORD environment variable')
add('token: null\nrefresh_interval: 15m')
add('image: ghcr.io/acme/api@sha256:{sha256}')
add('<script src="https://cdn.example.com/lib.min.js" integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC" crossorigin="anonymous"></script>')
add('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl deploy@ci-runner')
add('Resolved dependency tree: requests==2.31.0, urllib3==2.2.1, certifi==2024.2.2, idna==3.7')
add('ETag: "33a64df551425fcc55e4d42a148795d9f25f89d4"')
add('commit {sha1}\nAuthor: Build Bot <noreply@example.com>\nDate:   Mon May 6 14:03:22 2024 +0000'.replace("noreply@example.com", "[[EMAIL:noreply@example.com]]"))
add('Reset your password from Settings > Security; the token expires in 24 hours.')
add('The secret to good bread is a long, cold fermentation.')
add('Set `api_key` in config.toml, or pass --api-key on the command line.')

# --- network-device output
add('Router#show arp\nProtocol  Address          Age (min)  Hardware Addr   Type   Interface\nInternet  {ip_priv}             12   {mac_cisco}  ARPA   Vlan10\nInternet  {ip_priv}              -   {mac_cisco}  ARPA   Vlan10', 3)
add('Switch#show mac address-table\n          Mac Address Table\n-------------------------------------------\nVlan    Mac Address       Type        Ports\n----    -----------       --------    -----\n  10    {mac_cisco}    DYNAMIC     Gi0/1\n  20    {mac_cisco}    DYNAMIC     Gi0/2', 2)
add('GigabitEthernet0/1 is up, line protocol is up\n  Hardware is iGbE, address is {mac_cisco} (bia {mac_cisco})\n  Internet address is {ip_priv}/24')
add('$ ip addr show eth0\n2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP group default qlen 1000\n    link/ether {mac} brd ff:ff:ff:ff:ff:ff\n    inet {ip_priv}/24 brd {ip_priv} scope global dynamic eth0\n       valid_lft 86040sec preferred_lft 86040sec\n    inet6 {ip6c}/64 scope link\n       valid_lft forever preferred_lft forever'.replace("brd ff:ff:ff:ff:ff:ff", "brd [[MAC_ADDRESS:ff:ff:ff:ff:ff:ff]]"), 2)
add('eth0: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>  mtu 1500\n        inet {ip_priv}  netmask [[IP_ADDRESS:255.255.255.0]]  broadcast {ip_priv}\n        inet6 {ip6c}  prefixlen 64  scopeid 0x20<link>\n        ether {mac}  txqueuelen 1000  (Ethernet)\n        RX packets 1289341  bytes 1593232107 (1.5 GB)', 2)
add('en0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n\tether {mac}\n\tinet6 {ip6c}%en0 prefixlen 64 secured scopeid 0xe\n\tinet {ip_priv} netmask 0xffffff00 broadcast {ip_priv}')
add('eth0      Link encap:Ethernet  HWaddr {mac_up}\n          inet addr:{ip_priv}  Bcast:{ip_priv}  Mask:[[IP_ADDRESS:255.255.255.0]]')
add('$ arp -a\n? ({ip_priv}) at {mac} [ether] on wlan0\n? ({ip_priv}) at {mac} [ether] on wlan0', 2)
add('$ ip neigh\n{ip_priv} dev eth0 lladdr {mac} REACHABLE\n{ip6c} dev eth0 lladdr {mac} router STALE', 2)
add('C:\\> arp -a\n\nInterface: {ip_priv} --- 0xb\n  Internet Address      Physical Address      Type\n  {ip_priv}           {mac_dashlower}     dynamic\n  {ip_priv}           {mac_dashlower}     dynamic', 2)
add('Ethernet adapter Ethernet:\n   Physical Address. . . . . . . . . : {mac_dash}\n   DHCP Enabled. . . . . . . . . . . : Yes\n   IPv4 Address. . . . . . . . . . . : {ip_priv}(Preferred)\n   Subnet Mask . . . . . . . . . . . : [[IP_ADDRESS:255.255.255.0]]\n   Default Gateway . . . . . . . . . : {ip_priv}', 2)
add('host printer-3f {\n  hardware ethernet {mac};\n  fixed-address {ip_priv};\n}')
add('The AP reports client MAC {mac_BARE} with RSSI -67 dBm', 2)
add('mac={mac_bare} ip={ip_priv} vlan=30 hostname=iphone-of-yara', 2)
add('wlan0 station {mac} associated, signal -52 dBm, tx bitrate 866.7 MBit/s')
add('MAC address {mac_cisco} is flapping between ports Gi1/0/3 and Gi1/0/7', 2)
add('%SW_MATM-4-MACFLAP_NOTIF: Host {mac_cisco} in vlan 10 is flapping between port Gi0/1 and port Gi0/2')
add('bridge fdb add {mac} dev vxlan100 dst {ip_priv}')
add('Wake-on-LAN: sending magic packet to {mac_dash} via {ip_priv}')
add('BSSID: {mac}, SSID: CoffeeShop-Guest, channel 6')
add('Your device ID is {mac_BARE}; quote it when you call support.'.replace("Your device ID is", "Your device's MAC is"))
add('$ ip route\ndefault via {ip_priv} dev eth0 proto dhcp metric 100\n[[IP_ADDRESS:10.0.0.0]]/8 via {ip_priv} dev eth1')
add('$ ss -tnp\nESTAB 0 0 {ip_priv}:22 {ip_pub}:{port} users:(("sshd",pid={pid},fd=4))', 2)
add('$ netstat -an | grep 443\ntcp6       0      0 [[IP_ADDRESS:::1]]:443                 [[IP_ADDRESS:::1]]:51544               ESTABLISHED')
add('traceroute to example.com ({ip_doc}), 30 hops max, 60 byte packets\n 1  _gateway ({ip_priv})  0.412 ms  0.391 ms  0.377 ms\n 2  {ip_pub} ({ip_pub})  8.114 ms  8.098 ms  8.090 ms')
add('PING {ip_pub} ({ip_pub}) 56(84) bytes of data.\n64 bytes from {ip_pub}: icmp_seq=1 ttl=117 time=11.8 ms')
add('$ dig +short api.example.com\n{ip_doc}\n{ip_doc}')
add('iptables -A INPUT -s {ip_pub}/32 -p tcp --dport 22 -j DROP')
add('allow {ip_priv}/16;\ndeny all;')
add('server {ip_priv}:8080 max_fails=3 fail_timeout=30s;')
add('Bind the admin API to [{ip6c}]:9443 and the data plane to {ip_priv}:8443.', 2)
add('AllowedIPs = {ip_priv}/32, {ip6c}/128\nEndpoint = {ip_pub}:51820')
add('curl -6 http://[{ip6}]:8080/healthz')
add('The NAT64 prefix maps {ip_doc} to [[IP_ADDRESS:64:ff9b::c000:221]].')
add('Client connected from [[IP_ADDRESS:::ffff:' + ipv4_private() + ']] (IPv4-mapped).', 2)
add('route add [[IP_ADDRESS:2001:db8:abcd::]]/48 via {ip6c}')
add('IPv6 address: {ip6} (global, dynamic)')
add('ping6 {ip6c}%eth0')
add('Your public IP is {ip_pub}, your private one is {ip_priv}.', 2)
add('We whitelisted {ip_pub} and {ip_pub} for the partner integration.')
add('hosts file:\n{ip_priv}   db01.internal db01\n{ip_priv}   cache01.internal\n[[IP_ADDRESS:127.0.0.1]]   localhost')
# Network output that carries no address.
add('$ docker ps\nCONTAINER ID   IMAGE          COMMAND                  CREATED        STATUS        PORTS     NAMES\n{hex12}   nginx:1.25.4   "/docker-entrypoint..."   2 hours ago    Up 2 hours    80/tcp    web', 2)
add('snmpwalk -v2c -c public router 1.3.6.1.2.1.1.3.0')
add('OID 1.3.6.1.4.1.9.9.13.1.3.1.3 returned 41')
add('Host key fingerprint is MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48')
add('Server fingerprint SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8')
add('interface GigabitEthernet0/1\n description uplink to core\n switchport mode trunk\n spanning-tree portfast')
add('Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.2(7)E8, RELEASE SOFTWARE (fc1)')
add('RX packets 1289341  bytes 1593232107 (1.5 GB)\nTX errors 0  dropped 0 overruns 0  carrier 0  collisions 0')
add('use serde::de::Error;\nuse crate::db::add;\nimpl fmt::Display for Fee {}')
add('std::vector<int> v; auto it = std::find(v.begin(), v.end(), 42);')
add('request id {uuid}, trace id {sha256}', 2)
add('Build {sha7} passed: 412 tests in 3.214s')

# --- e-mail and chat
add('From: "Maria Garcia" <{email}>\nTo: {email}\nCc: {email_upper}\nSubject: Re: invoice 2024-0042', 2)
add('Reply-To: {email}\nX-Mailer: Thunderbird 115.10.1')
add('Hi, I\'m Fatima, you can reach me on {email} or WhatsApp [[PHONE:+44 7700 900461]].')
add('Please send the contract to {email}; cc my assistant ({email}).')
add('Mi correo es {email} y mi móvil [[PHONE:+34 612 34 56 78]].')
add('Meine E-Mail-Adresse lautet {email}, Telefon [[PHONE:+49 30 901820]].')
add('Vous pouvez me joindre au [[PHONE:06 12 34 56 78]] ou par mail : {email}')
add('私のメールアドレスは{email}です。電話は[[PHONE:03-1234-5678]]です。')
add('Contact: {email} | [[PHONE:(415) 555-0132]] | Slack @maria', 2)
add('email:{email}')
add('emails: [{email},{email}]')
add('"{email}" is not a valid recipient', 1)
add('the address [[EMAIL:o\'brien@example.ie]] bounced')
add('My old address [[EMAIL:Kenji.Tanaka@Example.COM]] no longer works.')
add('vcard:\nBEGIN:VCARD\nVERSION:3.0\nFN:Ana Silva\nEMAIL;TYPE=work:{email}\nTEL;TYPE=cell:[[PHONE:+55 11 91234-5678]]\nEND:VCARD')
add('Sign-up form: name=Noah Keller&email={email_pct}&phone=[[PHONE:%2B41446681800]]'.replace("[[PHONE:%2B41446681800]]", "[[PHONE:+41446681800]]"))
# E-mail look-alikes.
add('npm install @types/node@18.11.9 @babel/core@7.24.5')
add('@app.route("/users/<int:user_id>")\ndef show(user_id): ...')
add('@media (max-width: 600px) { .nav { display: none; } }')
add('docker pull python@sha256:{sha256}')
add('ssh deploy@{ip_priv} -p 2222', 2)
add('scp build.tar.gz ubuntu@{ip_pub}:/tmp/', 1)
add('Thanks @maria_garcia for the review!')

# --- phones, many countries and formats
PHONES = [
    "+1 (415) 555-0132", "415-555-0178", "(212) 555-0147", "646.555.0190", "+14155550123",
    "1-800-555-0199", "+1 415 555 0164", "+1-202-555-0111", "(718) 555-0102",
    "+44 20 7946 0958", "+44 (0)20 7946 0321", "020 7946 0744", "07700 900982",
    "+44 161 496 0734", "0044 20 7946 0102", "+447700900123",
    "+33 1 42 68 53 00", "+33 (0)6 12 34 56 78", "01.42.68.53.00", "+33612345678",
    "+49 (0)30 12345678", "030 12345678", "+49 151 23456789", "0151 23456789",
    "+49-89-636-48018", "089/636-48018",
    "+34 91 123 45 67", "+39 06 6982 1234", "+39 347 123 4567",
    "+31 20 794 0000", "+31 6 12345678", "06-12345678",
    "+91 98765 43210", "+91-98765-43210", "+81 3-1234-5678", "+81 90-1234-5678",
    "+61 2 9374 4000", "+61 412 345 678", "0412 345 678", "(02) 9374 4000",
    "(11) 91234-5678", "+86 138 0013 8000", "+86 10 6552 9988",
    "+7 495 123-45-67", "8 (495) 123-45-67", "+27 21 123 4567", "+353 1 234 5678",
    "+353 87 123 4567", "+46 8 123 456 78", "070-123 45 67", "+41 44 668 18 00",
    "+52 55 1234 5678", "+65 6123 4567", "+82 2-312-3456", "010-1234-5678",
    "+234 803 123 4567", "+54 9 11 1234-5678", "+48 22 123 45 67", "+48 512 345 678",
    "+32 2 123 45 67", "+43 1 234567", "+351 912 345 678", "+64 21 123 4567",
    "+852 2123 4567", "+972-3-123-4567", "054-123-4567", "+971 4 123 4567",
    "+90 212 123 45 67", "+20 10 1234 5678", "+63 917 123 4567",
]
PHONE_FRAMES = [
    "Call me on [[PHONE:{}]] after 6pm.",
    "phone: [[PHONE:{}]]",
    "{{\"name\": \"Li Wang\", \"phone\": \"[[PHONE:{}]]\", \"city\": \"Lyon\"}}",
    "Tel. [[PHONE:{}]]",
    "You can text [[PHONE:{}]] when the parcel arrives.",
    "Mobile: [[PHONE:{}]] (WhatsApp ok)",
    "If it breaks again ring [[PHONE:{}]], ask for Sofia.",
    "<a href=\"tel:[[PHONE:{}]]\">Call us</a>",
    "customer_phone=[[PHONE:{}]]&order={{order}}",
    "Kind regards,\nPierre Dubois\nSupport lead\nT [[PHONE:{}]]",
]
for i, p in enumerate(PHONES):
    add(PHONE_FRAMES[i % len(PHONE_FRAMES)].format(p))
add("TEL;TYPE=work,voice:[[PHONE:+1-415-555-0199]]")
add("Our office is on [[PHONE:+1 (212) 555-0175]] ext. 204.")
add("Missed call from [[PHONE:+447700900555]] at 14:03")
add("SMS from [[PHONE:+33 6 98 76 54 32]]: your code is 482913")
add("Please update my number from [[PHONE:415-555-0123]] to [[PHONE:415-555-0187]].")
# Phone look-alikes.
add("ISBN 978-0-306-40615-7")
add("Meeting moved to 2024-05-06 14:30-16:00 CEST.")
add("Unix time {ts} is when the job started; it ran for {ms} ms.")
add("created_at={ts_ms} updated_at={ts_ms}")
add("trace started at {ts_ns} ns")
add("Order #{order} shipped on 06/05/2024.", 3)
add("Invoice INV-2024-000123 total €1.234,56 due 30.06.2024")
add("Population of the region grew to 1 234 567 in 2023.")
add("See pages 123-145 and 201-210 of the manual.")
add("The patch is KB5034441; build 22631.3447.")
add("Coordinates: 48.8566, 2.3522 (Paris); -33.8688, 151.2093 (Sydney)")
add("lat=40.712776 lon=-74.005974 accuracy=12.5m")
add("Total: 1,299.00 USD (incl. 259.80 VAT)")
add("The query scanned 1,048,576 rows in 2.35 s.")
add("FedEx tracking 7712 3456 7890 shows it in Memphis.")
add("Ticket SUP-20240506-0042 was merged into SUP-20240501-0007.")
add("Score: 98.6 / 100, p95 latency 412 ms, p99 1203 ms")
add("Dimensions 120 x 80 x 45 cm, weight 12.5 kg")
add("Between 2019-2023 sales rose 12-15% per year.")
add("Run tests with `pytest -k test_phone -n 4 --maxfail=1`.")
add("PO number 4500012345 for cost centre 1000-200-300")
add("Serial number: SN-8842-1193-0071")
add("uptime 12:34:56 up 41 days,  3:02,  2 users,  load average: 0.15, 0.22, 0.19")
add("Timestamp 2024-05-06T14:03:22.512+02:00 and 2024-05-06 12:03:22 UTC")

# --- payment cards
CARD_FRAMES = [
    "My card number is {card}, exp 08/27.",
    "card: {card_dash}",
    "{\"pan\": \"{card_plain}\", \"exp_month\": 8, \"exp_year\": 2027}",
    "Please refund to the card ending {card} not the old one.",
    "pay with {card_plain} cvc 123",
    "<input name=\"cc-number\" value=\"{card}\">",
    "POST /checkout card_number={card_plain}&exp=1227",
    "Kartennummer: {card}",
    "Numéro de carte : {card_dash}",
    "The charge on {card} was declined twice.",
    "cc {card}",
    "card_number: '{card_plain}'",
]
for i in range(36):
    add(CARD_FRAMES[i % len(CARD_FRAMES)])
add("Test cards: [[CREDIT_CARD:4242 4242 4242 4242]] and [[CREDIT_CARD:5555555555554444]]")
add("I typed [[CREDIT_CARD:4111.1111.1111.1111]] into the form and it was rejected.")
add("Amex [[CREDIT_CARD:3782 822463 10005]] expires 11/26")
add("Diners [[CREDIT_CARD:3056 930902 5904]] is no longer accepted")
# Card look-alikes.
add("Card **** **** **** 4242 was charged 19.99 EUR")
add("Paid with Visa ending in 4242 (XXXX-XXXX-XXXX-4242)")
add("Order id {not_luhn16} is stuck in processing.", 3)
add("Transaction {not_luhn19} settled.", 2)
add("Stripe charge ch_3PCm9fLkdIwHu7ix0Zq9Ab1c for cus_Q1a2B3c4D5e6F7")
add("Amount 1234.5678 rounded to 1234.57")

# --- IBANs
IBAN_FRAMES = [
    "Please pay into {iban_spaced}.",
    "IBAN: {iban}",
    "<IBAN>{iban}</IBAN>",
    "{\"creditor\": {\"name\": \"Acme GmbH\", \"iban\": \"{iban}\", \"bic\": \"DEUTDEFFXXX\"}}",
    "Bankverbindung: {iban_de}, BIC COBADEFFXXX",
    "Sort code 40-47-84, account 70872490, IBAN {iban_gb}.",
    "RIB / IBAN : {iban_fr}",
    "Rekeningnummer {iban_nl} t.n.v. J. de Vries",
    "my iban is {iban} thanks",
    "Transfer from {iban_spaced} to {iban_spaced} failed: insufficient funds",
]
for i in range(40):
    add(IBAN_FRAMES[i % len(IBAN_FRAMES)])
add("Refund to [[IBAN:" + iban_compact("DE").lower() + "]] please")
# IBAN look-alikes.
add("BIC DEUTDEFF500, SWIFT CHASUS33XXX")
add("VAT number DE811569869, SIRET 73282932000074")
add("Postcode SW1A 1AA, London")
add("The part number is DE4412 rev B, lot 20240506.")

# --- SSNs
SSN_FRAMES = [
    "SSN: {ssn}",
    "My social is {ssn_space}.",
    "{\"ssn\": \"{ssn_plain}\", \"dob\": \"1984-03-12\"}",
    "Employee's social security number {ssn}",
    "ssn={ssn}&dob=1990-01-31",
    "Social Security No. {ssn} — please verify.",
    "Applicant SSN {ssn_plain} does not match our records.",
    "tax id (SSN) {ssn}",
]
for i in range(24):
    add(SSN_FRAMES[i % len(SSN_FRAMES)])
# SSN look-alikes.
add("ABA routing number 021000021, account 000123456789")
add("Shipping to ZIP 94103-1234.")
add("Part 555-12-A7 is back-ordered.")
add("Released on 2024-05-06 as build 2024.05.06-3.")
add("Case 00123456, priority 2.")

# --- versions, dates and other hard negatives for IP and MAC
add("I'm running v10.0.19045 and the update to 10.0.22631.3447 fails.")
add("Upgraded OpenSSL 3.0.2 -> 3.0.13 and nginx 1.24.0 -> 1.25.4.")
add("Chrome/120.0.0.0 started sending a reduced user agent.")
add("Our Windows build number is 10.0.19045.4291 and .NET is 4.8.1.")
add("pip install torch==2.3.0+cu121 torchvision==0.18.0")
add("Section 4.2.1 of the spec says so, see also 4.2.2.")
add("The ratio was 1.5:1 and the time 12:30:45.")
add("Date format: 06.05.2024 or 2024.05.06 or 6.5.24")
add("Price went from 12.99 to 14.49 (+11.5%).")
add("Kubernetes v1.29.4, containerd 1.7.15, runc 1.1.12")
add("fileVersion 1.0.24127.1, productVersion 10.0.26100")
add("Semantic version 1.0.0-alpha.1+build.20240506")
add("uuid {uuid}", 2)
add("hex color #1a2b3c and #ffcc00, rgba(26, 43, 60, 0.5)")
add("sha1sum: {sha1}  firmware.bin")
add("Durations: 1h02m03s, 00:01:02.345, 250ms")
add("Transaction at 2024-05-06 14:03:22.512 took 0.0042 s")
add("Ratio 16:9, resolution 1920x1080, 60Hz")
add("Latitude 51.5074, longitude -0.1278, altitude 11 m")
add("The model has 7.24B parameters and 32 layers.")
add("Backup id {hex12} finished in {ms} ms", 2)
add("git log --oneline\n{sha7} Fix race in pool\n{sha7} Bump version to 2.14.0")
add("Installed v1.2.10.4 of the firmware, the Wi-Fi drop is gone.")

# --- mixed, multi-type lines (chat-style requests that carry data)
add("Can you fix this? customer {email} paid with {card} from IP {ip_pub} and the webhook says 402", 2)
add("User record: name=Ingrid Berg, email={email}, phone=[[PHONE:+46 70 123 45 67]], iban={iban}")
add("Device {mac} at {ip_priv} keeps dropping; owner {email}", 2)
add("payload = {\"email\": \"{email}\", \"ssn\": \"{ssn}\", \"card\": \"{card_plain}\"}")
add("```json\n{\n  \"user\": \"{email}\",\n  \"last_ip\": \"{ip_pub}\",\n  \"mac\": \"{mac_up}\"\n}\n```")
add("```\n$ ssh -i key.pem ec2-user@{ip_pub}\nPermission denied (publickey).\n```")
add("```python\nclient = OpenAI(api_key=\"{s_openai}\")\nresp = client.chat.completions.create(model=\"gpt-4o\", messages=msgs)\n```")
add("```yaml\nenv:\n  - name: GITHUB_TOKEN\n    value: {s_github_fine}\n```")
add("```toml\n[auth]\ntoken = \"{s_stripe_test}\"\n```")
add("Logged in as {email} from {ip6} on 2024-05-06")

# --- plain PII-free chat (more of it, as in real traffic)
CLEAN = [
    "How do I configure a reverse proxy in front of two upstream servers?",
    "Write a regex that matches an email address.",
    "What's the difference between an IBAN and a SWIFT code?",
    "Explain how the Luhn checksum works with an example.",
    "Why does my Docker container lose its IP after a restart?",
    "Summarise this meeting: we agreed to ship version 3.2 on Friday.",
    "Give me a bash one-liner to count unique IPs in an access log.",
    "Translate 'my phone number changed' into German.",
    "What does MAC stand for in networking, and how is it different from an IP?",
    "Convert 192 degrees Fahrenheit to Celsius.",
    "How many bytes is an IPv6 address?",
    "List three ways to store API keys safely.",
    "Is 0.1 + 0.2 == 0.3 in Python?",
    "Write a SQL query that returns customers with more than 5 orders in 2023.",
    "My flight is at 06:45 on 12/05, gate B12.",
    "The recipe needs 2.5 cups of flour and 1.25 tsp salt.",
    "Rename the variable `user_email` to `contact_email` everywhere.",
    "Can you review my nginx config? It keeps returning 502.",
    "Set the timeout to 30s and retries to 3.",
    "What is the capital of Australia?",
    "Please format this table as markdown.",
    "The server answered HTTP/1.1 200 OK after 1.2 s.",
    "subnet math: how many hosts fit in a /26?",
    "Explain what a netmask like /24 means without using an example address.",
    "I get error E11000 duplicate key on insert.",
    "Sort these numbers: 42, 7, 19, 3.14, 1000.",
    "Our SLA is 99.95% monthly uptime.",
    "The lecture is in room 4.12, building C.",
    "Episode 3 of season 2 aired on 2023-10-14.",
    "Use port 8443 for TLS and 8080 for plain HTTP.",
]
for c in CLEAN:
    add(c)


# ---------------------------------------------------------------- round 2
# Written after the first round had been scored and the redactor fixed, and
# scored once before any further change, to see how the fixes carry over to
# shapes they were not made for. Rendered with its own random stream and
# appended, so that the first round's lines stay as they were.

T2 = []
# Some templates below draw values when they are defined; they take them from
# a stream of their own so that the first round's values do not move.
_round1_rng = rng
rng = random.Random(SEED + 1)


def add2(template, times=1):
    T2.append((times, template))


# E-mail addresses.
add2("id,name,email,plan\n17,Ana Silva,{email},pro\n18,Li Wang,{email},free", 2)
add2("Signed-off-by: Mateo Lopez <{email}>")
add2('<input type="email" name="email" value="{email}">')
add2("INSERT INTO users (email, created_at) VALUES ('{email}', now());", 2)
add2("[write to me](mailto:{email})")
add2("José Núñez <[[EMAIL:jose.nunez@example.es]]> replied to the thread")
add2("Kontakt: [[EMAIL:jürgen.weiß@example.de]]")
add2("bounce: <{email_upper}> mailbox full")
add2("user={email}&action=login&result=ok")
add2("POST /subscribe body: email={email_pct}&consent=true", 2)
# Phones.
add2("| Name | Phone |\n|---|---|\n| Yara | [[PHONE:+1 415 555 0132]] |\n| Noah | [[PHONE:+44 1632 960 123]] |")
add2("Tel: [[PHONE:+44 (0) 7700 900123]]")
add2("Büro: [[PHONE:+49 (0) 89 1234567]]")
add2("Llámame al [[PHONE:(+34) 912 345 678]]")
add2("cell: [[PHONE:+1.415.555.0132]]")
add2("From Europe dial [[PHONE:001 415 555 0132]].")
add2("Tokyo office [[PHONE:+81-3-1234-5678]]")
add2('{"contact": {"phone": "[[PHONE:+33 6 12 34 56 78]]"}}')
add2("Mumbai desk: [[PHONE:+91 22 2345 6789]]")
add2("Support [[PHONE:+1 (800) 555-0199]] x123")
add2("GET /callback?phone=[[PHONE:%2B14155550132]]&lang=en")
add2("please call 415 555 0132 tomorrow".replace("415 555 0132", "[[PHONE:415 555 0132]]"))
add2("Fax: [[PHONE:+49 30 1234567-89]]")
add2("Sydney: [[PHONE:+61 (0)2 9374 4000]]")
add2("WhatsApp me: [[PHONE:+55 21 98765-4321]]")
# Cards.
add2("{card_plain}|12|2027|123", 2)
add2('{"card_number": [[CREDIT_CARD:' + luhn_complete("4", 16) + ']], "cvv": "***"}')
add2("cc={card_plain}&exp=0827")
add2("Card: {card_dash}", 2)
add2("Refund issued to [[CREDIT_CARD:2223 0031 2200 3222]]")
add2("Amex [[CREDIT_CARD:371449635398431]] on file")
add2("Card on file: 411111******1111 (masked by the gateway)")
add2("Pay with •••• 4242 or add a new card")
# IBANs.
add2("name,iban\nAcme BV,{iban}\nJ. Smit,{iban}")
add2("IBAN:{iban}")
add2("POST /payouts?iban={iban}&amount=120.00")
add2("Pay to [[IBAN:" + iban_spaced("GB").lower() + "]] by Friday")
add2("Konto: {iban_spaced}.")
add2("IBAN [[IBAN:" + "-".join(iban_spaced("DE").split(" ")) + "]] (written with dashes)")
# SSNs.
add2("SSN {ssn_space}")
add2("SSN#: {ssn}")
add2("social security number: {ssn_plain}")
add2("ssn\n{ssn}\n{ssn}")
add2("SSN: xxx-xx-1234 (masked)")
add2("SSN (last 4): 6789")
# IP addresses.
add2("Client IP: {ip_pub}")
add2("from=<{email}> relay=[{ip_doc}]")
add2("ip={ip_priv}&port=8080&proto=tcp")
add2("IPv6: [[IP_ADDRESS:2001:0DB8:85A3:0000:0000:8A2E:0370:7334]]")
add2("open http://[[[IP_ADDRESS:fe80::1]]%25eth0]:8080/ in the browser")
add2("C:\\> ping -n 4 {ip_priv}")
add2("host {ip_pub} is unreachable")
add2("router bgp 65000\n neighbor {ip_doc} remote-as 65001\n neighbor {ip6c} remote-as 65002")
add2("interface Vlan10\n ip address {ip_priv} [[IP_ADDRESS:255.255.255.0]]\n ipv6 address [[IP_ADDRESS:2001:DB8:ACAD:1::1]]/64")
add2("X-Forwarded-For: {ip_pub}, {ip6}")
add2("Blocked IP {ip_pub}.")
add2("Allowed range 10.0.0.0/8 and 172.16.0.0/12".replace("10.0.0.0", "[[IP_ADDRESS:10.0.0.0]]").replace("172.16.0.0", "[[IP_ADDRESS:172.16.0.0]]"))
add2("nginx: [error] connect() failed (111: Connection refused) while connecting to upstream, client: {ip_pub}, upstream: \"http://{ip_priv}:8000/\"")
add2("kubectl get pods -o wide\nweb-7d9c  1/1  Running  0  3d  {ip_priv}  node-a")
# MAC addresses.
add2("Ethernet address: {mac}")
add2("Physical Address: {mac_dash}")
add2("hw ether {mac}")
add2("Router#show ip arp\nInternet  {ip_priv}  5  {mac_cisco}  ARPA  GigabitEthernet0/0")
add2("MAC: {mac_BARE}")
add2('{"device": "printer", "mac_address": "{mac}", "ip": "{ip_priv}"}')
add2("wlan0     Link encap:Ethernet  HWaddr {mac_up}")
# Credentials.
add2(
    '{"type": "service_account", "project_id": "demo", "private_key": "[[SECRET:-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC'
    + b64(40) + "\\n" + b64(64)
    + '\\n-----END PRIVATE KEY-----]]\\n", "client_email": "[[EMAIL:svc@demo.iam.gserviceaccount.com]]"}'
)
add2("DefaultEndpointsProtocol=https;AccountName=acmestore;AccountKey=[[SECRET:" + b64(86) + "==]];EndpointSuffix=core.windows.net")
add2("X-Auth-Token: {s_hex32}")
add2("api-key: {s_hex32}")
add2("passphrase: [[SECRET:correct-horse-battery-staple-42]]")
add2("redis-cli -h {ip_priv} -a [[SECRET:S3cretPass1]] ping")
add2("pg_dump --username app --password [[SECRET:S3cret1x]] shop")
add2("_auth=[[SECRET:" + b64(40) + "=]]")
add2("apiVersion: v1\nkind: Secret\ndata:\n  password: [[SECRET:cGFzc3dvcmQxMjM=]]")
add2("aws_session_token = [[SECRET:FwoGZXIvYXdzE" + b64(120) + "]]")
add2("slack: {s_slack_bot}")
add2("export GITLAB_TOKEN={s_gitlab}")
add2("curl --user deploy:{s_password} https://nexus.example.com/repository/")
add2("-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n-----END CERTIFICATE-----")
add2("GOOGLE_APPLICATION_CREDENTIALS=/etc/gcp/service-account.json")
add2("token_count: 1532, secret_name: db-credentials")
add2("password_min_length: 12\npassword_history: 5")
add2("SECRET_KEY_BASE is required in production")
# Close to PII, and PII-free.
add2("Python 3.12.1 on Linux, pip 24.0, setuptools 69.5.1")
add2("Meeting ID: 845 1234 5678, passcode: 739201")
add2("Order 2024-05-06-00042 ships from warehouse 7")
add2("GPS 37.7749,-122.4194 ±5m")
add2("Chrome/124.0.6367.91 Edg/124.0.2478.51")
add2("fe80 and ff02 are IPv6 prefixes; ::/0 is the default route")
add2("The build hash is {sha1} and the image id {hex12}")
add2("Latency p50 12.4 ms, p99 120.8 ms over 1,000,000 requests")
add2("ISO 8601: 2024-05-06T14:03:22Z, RFC 2822: Mon, 06 May 2024 14:03:22 +0000")
add2("Room 4.12.3 is on the fourth floor")
rng = _round1_rng


def render_all(templates, stream):
    """Renders `templates` with the generators drawing from `stream`."""
    global rng
    rng = stream
    rows = []
    for times, template in templates:
        n = times if GEN.search(template) else 1
        for _ in range(n):
            text, entities = render(template)
            for e in entities:
                assert e["value"] in text, (e, text)
            rows.append({"text": text, "entities": entities})
    rng.shuffle(rows)
    return rows


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/pii_heldout.jsonl"
    rows = []
    for times, template in T:
        n = times if GEN.search(template) else 1
        for _ in range(n):
            text, entities = render(template)
            for e in entities:
                assert e["value"] in text, (e, text)
            rows.append({"text": text, "entities": entities})
    rng.shuffle(rows)
    rows += render_all(T2, random.Random(SEED + 2))
    with open(out_path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} lines to {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
