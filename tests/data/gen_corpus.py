#!/usr/bin/env python3
"""Generates tests/data/pii_corpus.jsonl, the labelled corpus for the PII redactor.

Deterministic: the same seed always gives the same file, so a change in the
accuracy numbers always comes from a change in the redactor or in this script.

Every value is synthetic: e-mail addresses use example.com/.org/.net, US phone
numbers use the fictional 555-01xx block, UK numbers the Ofcom drama ranges,
cards/IBANs/SSNs are random numbers made valid by their check rules, IPs come
from the documentation ranges or private ranges, and secrets are random
strings in the providers' shapes.

Each line is {"text": ..., "entities": [{"type": ..., "value": ...}, ...]};
an entity is listed once per occurrence, with its exact text.

Decisions documented here because the test depends on them:
  * A local number without a phone keyword ("room 555-0100", "ext 4421") is
    NOT a phone number; with a keyword ("call 555-0147") it is.
  * Luhn-valid numbers with a real issuer prefix are cards even in test
    contexts ("test card 4111 ..."), so none appear among the negatives.
  * "::1" counts as an IP address.
  * For "Bearer <token>", "aws_secret_access_key=<v>" and URL credentials the
    labelled value is the secret part (the token, the key, "user:password").

Run: python3 tests/data/gen_corpus.py  (writes next to this script)
"""

import base64
import json
import os
import random
import string

R = random.Random(20240501)

FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
         "yuki", "zoe", "amir", "bianca", "chen", "diego", "fatima", "hugo", "ingrid", "jonas",
         "kenji", "lena", "marco", "nadia", "omar", "priya", "quentin", "rosa", "sven"]
LAST = ["smith", "jones", "garcia", "muller", "dubois", "rossi", "tanaka", "silva", "kumar",
        "nguyen", "kowalski", "larsen", "oconnor", "schmidt", "martin", "lopez", "sato", "costa"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com",
           "support.example.org", "eu.corp.example.com", "dept.example.net", "example.co.example.com"]


def cap(s):
    return s[0].upper() + s[1:]


def email():
    f, l = R.choice(FIRST), R.choice(LAST)
    d = R.choice(DOMAINS)
    style = R.randrange(8)
    if style == 0:
        local = f"{f}.{l}"
    elif style == 1:
        local = f"{f}+{R.choice(['shop', 'news', 'receipts', 'work', 'test'])}"
    elif style == 2:
        local = f"{f[0]}{l}{R.randrange(10, 99)}"
    elif style == 3:
        local = f"{f}_{l}"
    elif style == 4:
        local = f"{cap(f)}.{cap(l)}"
    elif style == 5:
        local = f"{f}-{l}"
    elif style == 6:
        local = f"{f}.{l}+{R.choice(['billing', 'dev'])}"
    else:
        local = f"{f}{R.randrange(1970, 2005)}"
    return f"{local}@{d}"


def digits(n):
    return "".join(R.choice(string.digits) for _ in range(n))


# ---------------------------------------------------------------- phones

def us_line():
    return f"01{R.randrange(0, 100):02d}"


def us_area():
    return str(R.choice([201, 212, 213, 305, 312, 415, 503, 512, 617, 646, 702, 718, 808, 917]))


def phone():
    """Returns (value, country) in one of many national/international formats."""
    k = R.randrange(36)
    a, line = us_area(), us_line()
    if k == 0:
        return f"({a}) 555-{line}", "US"
    if k == 1:
        return f"{a}-555-{line}", "US"
    if k == 2:
        return f"{a}.555.{line}", "US"
    if k == 3:
        return f"+1 {a} 555 {line}", "US"
    if k == 4:
        return f"+1 ({a}) 555-{line}", "US"
    if k == 5:
        return f"1-800-555-{line}", "US"
    if k == 6:
        return f"+1{a}555{line}", "US"
    if k == 7:
        return f"+1-{a}-555-{line}", "US"
    if k == 8:
        return f"+44 20 7946 0{R.randrange(0, 1000):03d}", "UK"
    if k == 9:
        return f"+44 7700 900{R.randrange(0, 1000):03d}", "UK"
    if k == 10:
        return f"020 7946 0{R.randrange(0, 1000):03d}", "UK"
    if k == 11:
        return f"07700 900{R.randrange(0, 1000):03d}", "UK"
    if k == 12:
        return f"+447700900{R.randrange(0, 1000):03d}", "UK"
    if k == 13:
        return f"+44 (0)20 7946 0{R.randrange(0, 1000):03d}", "UK"
    if k == 14:
        return "+33 1 " + " ".join(digits(2) for _ in range(4)), "FR"
    if k == 15:
        return "+33 6 " + " ".join(digits(2) for _ in range(4)), "FR"
    if k == 16:
        return "01 " + " ".join(digits(2) for _ in range(4)), "FR"
    if k == 17:
        return "06." + ".".join(digits(2) for _ in range(4)), "FR"
    if k == 18:
        return "+337" + digits(8), "FR"
    if k == 19:
        return f"+49 30 {digits(8)}", "DE"
    if k == 20:
        return f"+49 (0)30 {digits(7)}", "DE"
    if k == 21:
        return f"030 {digits(8)}", "DE"
    if k == 22:
        return f"+49 151 {digits(8)}", "DE"
    if k == 23:
        return f"0151 {digits(8)}", "DE"
    if k == 24:
        return f"+49-89-{digits(7)}", "DE"
    if k == 25:
        return f"+91 9{digits(4)} {digits(5)}", "IN"
    if k == 26:
        return f"+91-9{digits(4)}-{digits(5)}", "IN"
    if k == 27:
        return f"+919{digits(9)}", "IN"
    if k == 28:
        return f"+55 11 9{digits(4)}-{digits(4)}", "BR"
    if k == 29:
        return f"+55 (21) 9{digits(4)}-{digits(4)}", "BR"
    if k == 30:
        return f"(11) 9{digits(4)}-{digits(4)}", "BR"
    if k == 31:
        return f"+81 3-{digits(4)}-{digits(4)}", "JP"
    if k == 32:
        return f"+81 90-{digits(4)}-{digits(4)}", "JP"
    if k == 33:
        return f"03-{digits(4)}-{digits(4)}", "JP"
    if k == 34:
        return f"090-{digits(4)}-{digits(4)}", "JP"
    return f"+81 80 {digits(4)} {digits(4)}", "JP"


PHONE_TEMPLATES = {
    "US": ["You can reach me at {v} after 5pm.", "My phone number is {v}, please call before noon.",
           "Call {v} if the courier can't find the building.", "Tel: {v}",
           "Please have someone call me back at {v} about the refund.",
           "Best number to reach me: {v}", "Hi, this is Dana, my cell is {v}. Thanks!",
           "Ask for Dana at {v}.", "The front desk is {v} if you need anything.",
           "Customer phone: {v}", "{v} is my mobile, text anytime."],
    "UK": ["Ring me on {v} tomorrow morning.", "My mobile is {v}.", "Phone: {v}",
           "Could you call me on {v}? I'm in London this week.", "Office: {v}, ask for Sam.",
           "Contact number {v} (weekdays only)."],
    "FR": ["Appelez-moi au {v} svp.", "Mon numéro de portable : {v}", "Tél. {v}",
           "You can call the Paris office at {v}.", "Je suis joignable au {v} après 18h."],
    "DE": ["Rufen Sie mich bitte unter {v} an.", "Telefon: {v}", "Meine Handynummer ist {v}.",
           "Call our Berlin office on {v}.", "Mobil: {v}"],
    "IN": ["My WhatsApp number is {v}.", "Please call {v} for delivery.", "Mobile: {v}",
           "Reach our Bangalore team at {v}."],
    "BR": ["Meu celular é {v}.", "Pode me ligar no {v}?", "WhatsApp: {v}", "Telefone {v}"],
    "JP": ["電話番号は {v} です。", "Please call me at {v} (Tokyo time).", "携帯: {v}",
           "Our Osaka desk: {v}"],
}

BARE_PHONE = ["call me on {v}", "my cell: {v}", "WhatsApp {v} anytime", "Phone number {v}",
              "text me at {v} when you're outside", "mobile {v}"]


def bare_phone_value():
    k = R.randrange(4)
    if k == 0:
        return f"{us_area()}555{us_line()}"
    if k == 1:
        return f"555-{us_line()}"
    if k == 2:
        return f"55119{digits(8)}"
    return f"7700900{R.randrange(0, 1000):03d}"


# ---------------------------------------------------------------- cards

def luhn_check_digit(body):
    total = 0
    for i, c in enumerate(reversed(body)):
        v = int(c)
        if i % 2 == 0:
            v *= 2
            if v > 9:
                v -= 9
        total += v
    return str((10 - total % 10) % 10)


def card(valid=True):
    k = R.randrange(6)
    if k == 0:
        prefix, n = "4", 16
    elif k == 1:
        prefix, n = str(R.randrange(51, 56)), 16
    elif k == 2:
        prefix, n = str(R.randrange(2221, 2721)), 16
    elif k == 3:
        prefix, n = R.choice(["34", "37"]), 15
    elif k == 4:
        prefix, n = "6011", 16
    else:
        prefix, n = str(R.randrange(3528, 3590)), 16
    body = prefix + digits(n - len(prefix) - 1)
    check = luhn_check_digit(body)
    if not valid:
        check = str((int(check) + R.randrange(1, 10)) % 10)
    num = body + check
    style = R.randrange(3)
    if style == 0:
        return num
    sep = " " if style == 1 else "-"
    if n == 15:
        return sep.join([num[:4], num[4:10], num[10:]])
    return sep.join(num[i:i + 4] for i in range(0, 16, 4))


CARD_TEMPLATES = ["My card {v} was charged twice for the same order.",
                  "card number: {v} exp 09/27", "I paid with {v} but the payment shows as pending.",
                  "Please charge it to {v}.", "Why was {v} declined? It has funds.",
                  "Visa ending... actually here is the full one: {v}",
                  "Update billing to {v}, the old card expired.",
                  "Mi tarjeta es {v}, ¿pueden verificar el cargo?",
                  '{{"payment": {{"card": "{v}", "cvc": "***"}}}}']


# ---------------------------------------------------------------- IBANs

IBAN_SPEC = {  # country: list of (kind, length) for the BBAN
    "DE": [("n", 18)], "FR": [("n", 10), ("c", 11), ("n", 2)], "GB": [("a", 4), ("n", 14)],
    "NL": [("a", 4), ("n", 10)], "ES": [("n", 20)], "IT": [("a", 1), ("n", 10), ("c", 12)],
    "BE": [("n", 12)], "CH": [("n", 17)], "AT": [("n", 16)], "PL": [("n", 24)],
    "PT": [("n", 21)], "IE": [("a", 4), ("n", 14)],
}


def iban_check(cc, bban):
    s = bban + cc + "00"
    num = "".join(str(int(c, 36)) for c in s)
    return f"{98 - int(num) % 97:02d}"


def iban():
    cc = R.choice(sorted(IBAN_SPEC))
    bban = ""
    for kind, n in IBAN_SPEC[cc]:
        alphabet = {"n": string.digits, "a": string.ascii_uppercase,
                    "c": string.digits + string.ascii_uppercase}[kind]
        bban += "".join(R.choice(alphabet) for _ in range(n))
    raw = cc + iban_check(cc, bban) + bban
    if R.randrange(2):
        return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))
    return raw


IBAN_TEMPLATES = ["Please wire the refund to IBAN {v}.", "Bankverbindung: {v}",
                  "My IBAN is {v} (BIC on request).", "IBAN: {v}",
                  "Send the deposit to {v}, account holder Jane Doe.",
                  "Pouvez-vous rembourser sur le compte {v} ?",
                  "Overboeken naar {v} graag."]


# ---------------------------------------------------------------- SSNs

def ssn_parts(valid=True):
    if valid:
        area = R.choice([R.randrange(1, 666), R.randrange(667, 900)])
        group = R.randrange(1, 100)
        serial = R.randrange(1, 10000)
    else:
        k = R.randrange(5)
        area = [0, 666, R.randrange(900, 1000), R.randrange(1, 666), R.randrange(1, 666)][k]
        group = 0 if k == 3 else R.randrange(1, 100)
        serial = 0 if k == 4 else R.randrange(1, 10000)
    return f"{area:03d}", f"{group:02d}", f"{serial:04d}"


SSN_TEMPLATES = ["My SSN is {v}.", "SSN: {v}", "social security number {v} for the tax form",
                 "Here's my social: {v}", "The W-9 lists {v} as the taxpayer number.",
                 "Applicant SSN {v}, DOB on file."]


# ---------------------------------------------------------------- IPs and MACs

def ipv4():
    k = R.randrange(5)
    if k == 0:
        return f"192.0.2.{R.randrange(1, 255)}"
    if k == 1:
        return f"198.51.100.{R.randrange(1, 255)}"
    if k == 2:
        return f"203.0.113.{R.randrange(1, 255)}"
    if k == 3:
        return f"10.{R.randrange(0, 256)}.{R.randrange(0, 256)}.{R.randrange(1, 255)}"
    return f"192.168.{R.randrange(0, 256)}.{R.randrange(1, 255)}"


def ipv6():
    k = R.randrange(5)
    h = lambda: f"{R.randrange(0, 65536):x}"
    if k == 0:
        return ":".join(["2001", "0db8"] + [f"{R.randrange(0, 65536):04x}" for _ in range(6)])
    if k == 1:
        return f"2001:db8::{h()}:{h()}"
    if k == 2:
        return f"fe80::{h()}:{h()}:{h()}:{h()}"
    if k == 3:
        return f"2001:db8:{h()}::{h()}"
    return "::1"


IP4_TEMPLATES = ["The server at {v} stopped responding at midnight.", "ssh admin@{v} -p 2222 fails with timeout",
                 "Our office IP is {v}, please whitelist it.", "curl http://{v}:8080/health returns 502",
                 "Login attempt from {v} yesterday, was that you?", "set DB_HOST={v} in the env file",
                 "ping {v} works but DNS doesn't"]
IP6_TEMPLATES = ["The host resolves to {v} over IPv6.", "Bind the listener to [{v}]:443 please.",
                 "Blocked requests from {v} in the WAF.", "ip addr shows inet6 {v}/64 scope global"]


def mac():
    octets = [R.randrange(0, 256) for _ in range(6)]
    sep = R.choice([":", "-"])
    fmt = R.choice(["{:02x}", "{:02X}"])
    return sep.join(fmt.format(o) for o in octets)


MAC_TEMPLATES = ["My laptop's MAC address is {v}, can you add it to the allow list?",
                 "Device {v} keeps dropping off the Wi-Fi.", "DHCP reservation for {v} please",
                 "ether {v} txqueuelen 1000", "Whitelist MAC {v} on the guest network."]


# ---------------------------------------------------------------- secrets

B62 = string.ascii_letters + string.digits


def rnd(n, alphabet=B62):
    while True:
        s = "".join(R.choice(alphabet) for _ in range(n))
        # Real keys are random; make sure each has a digit and a letter so the
        # shape is realistic rather than by chance a plain word.
        if any(c.isdigit() for c in s) and any(c.isalpha() for c in s):
            return s


def b64url(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def jwt():
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps({"sub": digits(8), "name": cap(R.choice(FIRST)),
                                 "iat": 1714567890}, separators=(",", ":")).encode())
    return f"{header}.{payload}.{rnd(43, B62 + '-_')}"


def pem():
    lines = [base64.b64encode(bytes(R.randrange(256) for _ in range(48))).decode() for _ in range(4)]
    kind = R.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"


def secret_line():
    """Returns (text, [values])."""
    k = R.randrange(18)
    if k == 0:
        v = "sk-" + rnd(48)
        return f"my OPENAI_API_KEY is {v}, why do I get 401?", [v]
    if k == 1:
        v = "sk-proj-" + rnd(64, B62 + "_-")
        return f"client = OpenAI(api_key=\"{v}\")", [v]
    if k == 2:
        v = "AKIA" + "".join(R.choice(string.ascii_uppercase + string.digits) for _ in range(16))
        return f"Access key id {v} was rotated, is the old one still valid?", [v]
    if k == 3:
        v = rnd(40, B62 + "/+")
        return f"[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = {v}", [v]
    if k == 4:
        v = "ghp_" + rnd(36)
        return f"git clone https://github.com/acme/app using token {v} fails", [v]
    if k == 5:
        v = "gho_" + rnd(36)
        return f"The OAuth token {v} expired after an hour.", [v]
    if k == 6:
        v = "github_pat_" + rnd(22) + "_" + rnd(59)
        return f"export GH_TOKEN={v}", [v]
    if k == 7:
        v = f"xox{R.choice('bpars')}-{digits(12)}-{digits(13)}-{rnd(24)}"
        return f"Slack bot token: {v} -- posting returns invalid_auth", [v]
    if k == 8:
        v = "AIza" + rnd(35, B62 + "_-")
        return f"maps.googleapis.com/maps/api/js?key={v}", [v]
    if k == 9:
        v = R.choice(["sk_live_", "rk_live_"]) + rnd(24)
        return f"Stripe says {v} is invalid after the rotation", [v]
    if k == 10:
        v = jwt()
        return f"The cookie contains session={v}; is that safe?", [v]
    if k == 11:
        v = rnd(32, B62 + "-_")
        return f"curl -H 'Authorization: Bearer {v}' https://api.example.com/v1/models", [v]
    if k == 12:
        user, pw = R.choice(FIRST), rnd(14, B62 + "!#$%")
        v = f"{user}:{pw}"
        scheme = R.choice(["postgres", "mysql", "https", "redis", "amqp"])
        return f"DATABASE_URL={scheme}://{v}@db.example.com:5432/app", [v]
    if k == 13:
        v = pem()
        return f"Here is the key that fails to load:\n{v}\nWhat's wrong?", [v]
    if k == 14:
        v = jwt()
        return f"Authorization: Bearer {v}", [v]
    if k == 15:
        v = "sk-" + rnd(20) + "T3BlbkFJ" + rnd(20)
        return f"I accidentally pasted {v} in the chat, rotate it please", [v]
    if k == 16:
        v = "xoxb-" + digits(11) + "-" + rnd(24)
        return f'{{"slack_token": "{v}"}}', [v]
    v = "rk_live_" + rnd(30)
    return f"restricted key {v} only has read access", [v]


# ---------------------------------------------------------------- PII-free text

PROSE = [
    "How do I reverse a linked list in Python without recursion?",
    "Can you summarise this article about climate policy in three bullet points?",
    "My React component re-renders every time the parent updates, how do I stop that?",
    "Write a haiku about autumn leaves.",
    "What's the difference between a process and a thread?",
    "Translate 'good morning, how are you?' into Spanish and French.",
    "I think the bug is in the retry loop; it never backs off.",
    "Thanks, that worked! One more question: how do I add a unit test for it?",
    "Explain the CAP theorem like I'm five.",
    "The build fails with 'cannot find module', but the file is right there.",
    "Give me a recipe for a vegetarian lasagna that serves six.",
    "Is it better to use a HashMap or a BTreeMap when I need ordered keys?",
    "Please rewrite this paragraph so it sounds more formal.",
    "Why does my Docker container exit immediately after starting?",
    "What are good names for a golden retriever puppy?",
    "I have 3 kids and 2 dogs, plan a weekend trip for us near the coast.",
    "It took 45 minutes to compile, is that normal for a project this size?",
    "Summarise chapter 7 of the book in under 200 words.",
    "My package arrived damaged, what are my options?",
    "Can you help me draft a polite email asking for a deadline extension?",
    "What is the capital of Australia?",
    "Rank these three laptops by battery life.",
    "How many calories are in a banana?",
    "I need a SQL query that returns the top 5 customers by revenue.",
    "Explain how TLS certificate pinning works.",
    "Debug this: the loop runs one time too many.",
    "Is Rust's borrow checker the same as a garbage collector?",
    "What are the pros and cons of microservices for a team of 4 engineers?",
    "Convert this JSON to YAML please.",
    "My tests pass locally but fail in CI, where should I start looking?",
    "Suggest a title for my blog post about remote work.",
    "What does HTTP status 429 mean and how should a client react?",
    "Why is the sky blue?",
    "Plan a 3-day itinerary for Lisbon on a budget.",
    "What's a good way to learn Japanese kanji?",
    "The meeting moved to Thursday afternoon, can you update the summary?",
    "I'd like a refund for the subscription I cancelled last week.",
    "Your app logged me out again after the update.",
    "Is there a dark mode setting somewhere?",
    "Please explain gradient descent with a simple example.",
    "Write a cover letter for a junior data analyst position.",
    "Can you check the grammar in this sentence: 'Me and him goes to school.'",
    "How do I set up a Python virtual environment on Windows?",
    "What's the time complexity of quicksort in the worst case?",
    "I forgot my password, how do I reset it?",
    "Why does my sourdough not rise?",
    "Help me write a birthday message for my grandmother's 90th.",
    "Compare PostgreSQL and SQLite for a small desktop app.",
    "List five icebreaker questions for a team meeting.",
    "What does the error 'borrowed value does not live long enough' mean?",
    "Generate a regex that matches a US zip code.",
    "Can you make this function async?",
    "The chart looks wrong, the y-axis should start at zero.",
    "Explain what a monad is without using the word monad.",
    "I'm getting a segfault only in release mode.",
    "Tell me a fun fact about octopuses.",
    "How should I structure a README for an open source library?",
    "Please shorten this to a tweet.",
    "What's the best way to store user preferences in a mobile app?",
    "My manager wants weekly status updates, give me a template.",
    "Is it safe to eat raw cookie dough?",
    "Write unit tests for a function that parses durations like '1h30m'.",
    "How do I undo the last git commit but keep the changes?",
    "Explain the difference between TCP and UDP.",
    "What should I pack for a hiking trip in the Alps in September?",
    "Why do cats purr?",
    "Can you outline a presentation on renewable energy?",
    "The customer says the checkout button does nothing on Safari.",
    "Describe the plot of Hamlet in two sentences.",
    "How do vaccines train the immune system?",
    "What's the etiquette for tipping in Japan?",
    "Make the tone of this message friendlier.",
    "I keep getting merge conflicts in package-lock.json.",
    "What are some low-maintenance houseplants?",
    "How do I center a div horizontally and vertically?",
    "Write a limerick about a programmer who loves coffee.",
    "Can you explain the rules of cricket briefly?",
    "What is the difference between affect and effect?",
    "How do I profile memory usage in a Node service?",
    "Which sorting algorithm is stable?",
    "My landlord hasn't fixed the heating, what should I write to him?",
    "Suggest a weekly workout plan for a beginner.",
    "What is a closure in JavaScript?",
    "I'm nervous about my job interview tomorrow, any tips?",
    "How does compound interest work?",
    "Why is my Wi-Fi slower in the evening?",
    "Please turn these notes into meeting minutes.",
    "Could you give me feedback on my essay introduction?",
    "Explain Kubernetes pods, deployments and services.",
    "What is the best way to back up photos from my phone?",
    "How do I write a good commit message?",
    "The dashboard shows no data since this morning.",
    "I'd like to change my delivery address before the parcel ships.",
    "Can I get an invoice with my company name on it?",
    "Explain the difference between authentication and authorization.",
    "Recommend three sci-fi novels for someone who loved Dune.",
    "What's the fastest way to learn touch typing?",
    "Our team retro felt unproductive, how can we run it better?",
    "Write a short story that starts with 'The lighthouse was silent.'",
    "How do I handle errors idiomatically in Go?",
    "Is it worth upgrading from 8 GB to 16 GB of RAM for development?",
    "Give me a checklist for launching a landing page.",
    "Why does floating point 0.1 + 0.2 not equal 0.3?",
    "Please list the steps to rotate an API key safely.",
    "Email support said they'd call me back, but nobody did.",
    "Where can I find my account settings?",
    "My phone keeps restarting after the latest update.",
    "Send me the password reset link again, the first one expired.",
    "What's the difference between a credit card and a debit card?",
    "How do I find my IP address on a Mac?",
    "Explain what an IBAN is used for.",
    "Is it safe to share my social security number over email?",
    "What does a MAC address identify?",
    "How long should an API token be valid?",
]

# Hard negatives: number-heavy strings that must not be altered.

def hard_negatives():
    out = []
    add = out.append
    for _ in range(6):
        add(f"My order #{digits(R.choice([6, 8, 10]))} hasn't arrived yet, can you check?")
    for _ in range(4):
        add(f"Order number {digits(10)} shows as delivered but I never got it.")
    add(f"order {us_area()}-555-{us_line()} was split into two shipments")
    add(f"Invoice INV-2024-{digits(5)} is missing the VAT line.")
    add(f"Invoice no. {digits(9)} dated 2024-03-15, total 1,245.00 EUR")
    add(f"Ticket #{digits(7)}: login page times out")
    add(f"Case ID {digits(8)} was escalated to tier 2.")
    add(f"PO {digits(10)} needs approval before Friday.")
    add(f"Reference {digits(3)}-{digits(3)}-{digits(4)} on the booking confirmation.")
    add(f"Confirmation code {digits(6)}, booking ref QX7T2L")
    add(f"Transaction id {digits(12)} failed with code 05")
    add(f"Meeting ID: {digits(3)} {digits(4)} {digits(4)}, passcode in the calendar invite")
    add("Account 12345678, sort code shown on the statement")
    add("SKU 400-1234-567 is out of stock")
    add(f"Customer ID {digits(10)} has two active subscriptions.")
    add(f"Serial number {digits(4)}-{digits(4)}-{digits(4)} on the back of the router")
    # Dates and times.
    for d in ["2024-05-01", "2023-12-31", "1999-01-01", "2024/05/01"]:
        add(f"The release is scheduled for {d}.")
    add("Report covers 01.05.2024 to 31.05.2024.")
    add("Due date: 05/01/2024, late fee applies after 05/15/2024")
    add("Meeting at 10:30, then lunch at 12:15, standup moved to 09:45.")
    add("The job ran from 2024-05-01 10:30:00 to 2024-05-01 11:45:12.")
    add("Office hours are 9:00-17:30 Monday to Friday.")
    add("Sprint 2024-05-06 - 2024-05-17 planning notes")
    add("Born in 1987, moved in 2004, graduated 2009")
    add("Compare sales for 2019 2020 2021 in one chart")
    add("The deadline is 15 March 2025 at 17:00 CET.")
    for _ in range(4):
        add(f"Logged at 2024-0{R.randrange(1, 10)}-1{R.randrange(0, 10)}T{R.randrange(10, 24)}:{R.randrange(10, 60)}:{R.randrange(10, 60)}Z")
    add("created_at: 2024-05-01T10:30:00.123456+02:00")
    add("timestamp=1714567890 and ts_ms=1714567890123")
    add("Unix epoch 1700000000 was on 2023-11-14.")
    add("Event time 2024-05-01 10:30:00 +0000 UTC")
    # Versions.
    for v in ["1.2.3", "v10.0.19045", "Python 3.11.7", "node v18.17.1", "Windows 10.0.19045.3803",
              "Chrome 124.0.6367.91", "kernel 6.5.0-35-generic", "version 2.4.1.0", "rustc 1.80.0",
              "OpenSSL 3.0.2 15 Mar 2022", ".NET 4.0.30319.42000", "iOS 17.4.1", "build 22631.3447"]:
        add(f"I'm running {v} and the crash still happens.")
    add("Upgrade from 1.9.12 to 2.0.0-rc.1 broke the plugin.")
    # Identifiers.
    for _ in range(5):
        add(f"Request id {uuid()} failed with 500.")
    for _ in range(4):
        add(f"Fixed in commit {rnd(40, '0123456789abcdef')} on main.")
    for _ in range(3):
        add(f"git cherry-pick {rnd(7, '0123456789abcdef')}")
    add("docker pull nginx@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    add("trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7")
    # Money and percentages.
    for p in ["$1,299.99", "€49,90", "£12.50", "USD 1,234.56", "¥12,800", "1 299,00 €", "$4,155,550,123",
              "₹2,49,999", "CHF 1'250.00", "$0.99", "€1.299,00", "$12.5M", "R$ 1.234,56"]:
        add(f"The total came to {p}, which seems too high.")
    add("Revenue grew 12.5% to 4,512,300 in Q3.")
    add("Uptime was 99.99% last month, error rate 0.02%.")
    add("Discount code SAVE20 gives 20% off orders over $150")
    # Phone-like but not phones (no phone keyword, or a stronger non-phone one).
    add("Please deliver to room 555-0100 on the fifth floor.")
    add("Room 555-0199 has the projector.")
    add("ext. 4421 is the help desk extension")
    add("Flight UA 1234 departs from gate 42.")
    add("ZIP code 94103, PO box 12345")
    add("PIN 1234 is the default, change it.")
    add("Score was 3-2 after extra time, 2-1 at half time.")
    add("Ratio 16:9 at 1920x1080, 60 Hz")
    add("See John 3:16 and Psalm 23:1-6.")
    add("Population of 8,100,000,000 by 2024")
    add("ISBN 978-3-16-148410-0 is the second edition.")
    add("The answer is 1234567, not 7654321.")
    add("It costs between 100 200 and 300 depending on size.")
    add("Steps: 1 2 3 4 5 6 7 8 9 10")
    add("Call the function 3 times with n = 4155550123 as the seed.")
    # Luhn-failing card-like numbers and invalid SSNs.
    for _ in range(8):
        add(f"Is {card(valid=False)} a valid card number? The form rejects it.")
    for _ in range(8):
        a, g, s = ssn_parts(valid=False)
        add(f"SSN {a}-{g}-{s} was rejected as invalid, is that format wrong?")
    add("Number 000-00-0000 is the placeholder on the form.")
    add("The ID 987-65-4321 is a test value from the docs.")
    # Code.
    code = [
        "for i in range(10): print(i * 2)",
        "x = arr[1::2]  # every other element",
        "use std::collections::HashMap;",
        "std::vector<int> v{1, 2, 3};",
        "const PORT = 8080; app.listen(PORT);",
        "SELECT * FROM orders WHERE id = 4155550123 AND total > 100.50;",
        "if (a >= 10 && b <= 20) { return a - b; }",
        "let re = /^\\d{3}-\\d{3}-\\d{4}$/;",
        "mask = 0xDEADBEEF & 0xFFFF0000",
        "chmod 0755 ./deploy.sh && ./deploy.sh --retries 3",
        "time.sleep(1.5); retry(max_attempts=5)",
        "assert add(2, 3) == 5",
        "matrix = [[1, 2], [3, 4]]",
        "fn main() { println!(\"{}\", 2_u64.pow(32)); }",
        "git log --since=2024-05-01 --until=2024-05-31",
        "kubectl scale deploy/web --replicas=3",
        "np.random.seed(42); x = np.linspace(0, 1, 100)",
        "CREATE INDEX idx_created ON events (created_at);",
        "printf(\"%d-%02d-%02d\", year, month, day);",
        "wget -O - https://example.com/install.sh | sh",
        "ports: - \"8080:80\" - \"8443:443\"",
        "Vec::with_capacity(1024)",
        "a::b::c::d()",
        "obj?.items?.[0]?.id ?? -1",
        "lambda x: x ** 2 + 3 * x - 7",
        "`rm -rf node_modules && npm ci`",
        "Error: listen EADDRINUSE: address already in use :::3000",
        "at Object.<anonymous> (/app/src/index.js:42:13)",
        "File \"/usr/lib/python3.11/json/decoder.py\", line 355, in raw_decode",
        "panicked at src/main.rs:17:5: index out of bounds: the len is 3 but the index is 10",
    ]
    for c in code:
        add(c)
    # Math.
    for m in ["3.14159 * 2 = 6.28318", "2^32 = 4294967296", "1/3 + 1/6 = 1/2", "e = 2.718281828459045",
              "sqrt(144) = 12 and 12^2 = 144", "10! = 3628800", "2^64 - 1 = 18446744073709551615",
              "Solve 3x + 7 = 22 for x.", "The mean of 4, 8, 15, 16, 23, 42 is 18.", "1e-9 < eps < 1e-6",
              "x = (-b ± sqrt(b^2 - 4ac)) / 2a", "123456789 * 987654321 = 121932631112635269"]:
        add(m)
    # URLs without credentials.
    for u in ["https://example.com/docs/v2/install", "http://localhost:8080/api/v1/users?page=2",
              "https://example.com/orders/4155550123/status", "ftp://ftp.example.org/pub/file-1.2.3.tar.gz",
              "https://example.com:8443/path/to/page#section-2", "postgres://localhost:5432/app",
              "https://cdn.example.net/img/1920x1080/banner.png", "git@github.com:acme/flywheel.git",
              "https://example.com/search?q=555-0100&lang=en"]:
        add(f"Open {u} and tell me what you see.")
    # Package names, decorators, paths.
    for p in ["npm install @types/node@20.11.5", "yarn add @babel/core@7.22.0 lodash@4.17.21",
              "pip install requests==2.31.0", "import { ref } from '@vue/reactivity'",
              "@dataclass\nclass Point:\n    x: int\n    y: int", "@app.route('/users/<int:user_id>')",
              "@pytest.mark.parametrize('n', [1, 2, 3])", "@Override public String toString()",
              "@media (max-width: 768px) { .nav { display: none; } }", "user@localhost can't log in to mysql",
              "ping root@server01 failed", "Follow @flywheel_ai for updates", "cargo add serde@1.0.197",
              "email me at alice at example dot com"]:
        add(p)
    for p in ["/usr/local/bin/python3.11", "C:\\Users\\Public\\Documents\\report_2024-05-01.xlsx",
              "~/projects/flywheel/src/main.rs:42:13", "/var/log/nginx/access.log.1",
              "./build/output/app-1.2.3-x86_64.AppImage", "/home/user/.ssh/known_hosts"]:
        add(f"The file is at {p}")
    for s in ["^1.2.3", "~2.0.0", ">=1.0.0 <2.0.0", "1.x || 2.x", ">= 3.8, < 4.0"]:
        add(f"Set the dependency range to {s} in the manifest.")
    # Colours, CSS, coordinates, tracking numbers.
    for c in ["#1a2b3c", "#FF5733", "#333", "rgb(255, 87, 51)", "rgba(0, 0, 0, 0.5)", "hsl(210, 50%, 40%)"]:
        add(f"Use {c} for the header background.")
    add("margin: 0 auto; padding: 12px 24px; font-size: 1.125rem; z-index: 1000;")
    add("grid-template-columns: repeat(3, 1fr); gap: 16px;")
    for c in ["37.7749, -122.4194", "48.8566° N, 2.3522° E", "lat 40.712776 lon -74.005974",
              "51.5074,-0.1278", "-33.8688, 151.2093"]:
        add(f"The venue is at {c}.")
    for t in ["1Z999AA10123456784", "9400 1111 2222 3333 4444 55", "7749 1234 5678",
              "92055 90100 00000 00000 12", "JD014600006281234567"]:
        add(f"Tracking number {t} shows no movement since Monday.")
    add("Your parcel 7749 1234 5678 is out for delivery.")
    # Misc numbers.
    add("The image is 1920x1080 at 300 dpi and 4.2 MB.")
    add("Set max_tokens to 4096 and temperature to 0.7.")
    add("We processed 12,345,678 requests with p99 latency of 250 ms.")
    add("Temperature dropped from 21.5 to -3.2 degrees overnight.")
    add("The recipe needs 250 g flour, 2 eggs and 0.5 l milk.")
    add("Lottery numbers: 04 11 23 35 42 49")
    add("Call stack depth exceeded 10000 frames.")
    add("Our hotline hours changed to 8:00-20:00 on weekdays.")
    add("Text 'STOP' to unsubscribe from 2024 campaign updates.")
    add("Phone battery at 15%, charging to 80% takes 45 minutes.")
    add("The MAC of the file, HMAC-SHA256, is computed per request.")
    add("IPv4 has 4294967296 addresses; IPv6 has 2^128.")
    add("Serial console at 115200 baud, 8N1.")
    add("Chapter 12.4.1.3 covers error handling.")
    add("Section 2.3.1.4 explains the exceptions.")
    add("Bearer tokens expire after 3600 seconds.")
    add("Set the password to something with at least 12 characters.")
    add("password: use the one from the vault, not the default")
    add("The sk-learn library (scikit-learn) has a great user guide.")
    add("Tokens start with sk- followed by random characters.")
    add("The key format is AKIA followed by 16 characters.")
    add("Use ghp_ tokens only for scripts, never share them.")
    add("-----BEGIN CERTIFICATE----- blocks are public and fine to share.")
    add("Our IBAN format starts with two letters like DE or FR.")
    add("ES 2024 results: 12 wins, 3 losses")
    add("Dial-up modems ran at 56 kbps in 1999.")
    add("From 10.5 to 12.75 is a 21.4% increase.")
    return out


def uuid():
    h = "".join(R.choice("0123456789abcdef") for _ in range(32))
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"



# ---------------------------------------------------------------- hand-written hard cases

# (text, [(type, value), ...]); written by hand to probe edge cases.
HAND_PII = [
    ("Call me: +1 (555) 010-0123 after lunch", [("PHONE", "+1 (555) 010-0123")]),
    ("my number's 07700 900461, ta", [("PHONE", "07700 900461")]),
    ("reach me on +44 7700 900 461 any time", [("PHONE", "+44 7700 900 461")]),
    ("Tel +49 (0) 30 1234 5678", [("PHONE", "+49 (0) 30 1234 5678")]),
    ("Phone: +1.415.555.0142", [("PHONE", "+1.415.555.0142")]),
    ("phone:4155550143", [("PHONE", "4155550143")]),
    ("phone=+14155550144&email=alice@example.com",
     [("PHONE", "+14155550144"), ("EMAIL", "alice@example.com")]),
    ("WhatsApp +91 98765 43210 / +91 91234 56789",
     [("PHONE", "+91 98765 43210"), ("PHONE", "+91 91234 56789")]),
    ("Call 415-555-0145 or 415-555-0146", [("PHONE", "415-555-0145"), ("PHONE", "415-555-0146")]),
    ("Numbers: 415-555-0147, 415-555-0148.", [("PHONE", "415-555-0147"), ("PHONE", "415-555-0148")]),
    ("cell (415)555-0149", [("PHONE", "(415)555-0149")]),
    ("+1 415-555-0150 ext. 12", [("PHONE", "+1 415-555-0150")]),
    ("📞 +33 6 12 34 56 78", [("PHONE", "+33 6 12 34 56 78")]),
    ("Phone 020-7946-0958", [("PHONE", "020-7946-0958")]),
    ("Llámame al +34 612 345 678 mañana", [("PHONE", "+34 612 345 678")]),
    ("Ring 0161 496 0000 for the Manchester office", [("PHONE", "0161 496 0000")]),
    ('{"name":"Ana","phone":"+5511987654321"}', [("PHONE", "+5511987654321")]),
    ("call 415 555 0151 tonight", [("PHONE", "415 555 0151")]),
    ("Emergency contact: 555-0152 (my brother)", [("PHONE", "555-0152")]),
    ("tel: +81-3-1234-5678", [("PHONE", "+81-3-1234-5678")]),
    ("ALICE.SMITH@EXAMPLE.COM is my work address", [("EMAIL", "ALICE.SMITH@EXAMPLE.COM")]),
    ("write to alice.o'neil@example.com", [("EMAIL", "alice.o'neil@example.com")]),
    ('{"text":"mail \\u003calice@example.com\\u003e please"}', [("EMAIL", "alice@example.com")]),
    ("email: bob@mail.eu.example.org;", [("EMAIL", "bob@mail.eu.example.org")]),
    ("(carol+tickets@example.net)", [("EMAIL", "carol+tickets@example.net")]),
    ("Card: 5555 5555 5555 4444", [("CREDIT_CARD", "5555 5555 5555 4444")]),
    ("amex 3782 822463 10005 please", [("CREDIT_CARD", "3782 822463 10005")]),
    ("card 4111111111111111 exp 12/26 cvv 123", [("CREDIT_CARD", "4111111111111111")]),
    ("4111 1111 1111 1111 12/26", [("CREDIT_CARD", "4111 1111 1111 1111")]),
    ("pay with 6011-1111-1111-1117!", [("CREDIT_CARD", "6011-1111-1111-1117")]),
    ("IBAN:DE89370400440532013000", [("IBAN", "DE89370400440532013000")]),
    ("iban de89 3704 0044 0532 0130 00 thanks", [("IBAN", "de89 3704 0044 0532 0130 00")]),
    ("GB82 WEST 1234 5698 7654 32 is the account", [("IBAN", "GB82 WEST 1234 5698 7654 32")]),
    ("to FR14 2004 1010 0505 0001 3M02 606.", [("IBAN", "FR14 2004 1010 0505 0001 3M02 606")]),
    ("NL91ABNA0417164300, BIC ABNANL2A", [("IBAN", "NL91ABNA0417164300")]),
    ("SSN#123-45-6789", [("SSN", "123-45-6789")]),
    ("ssn: 078 05 1121", [("SSN", "078 05 1121")]),
    ("My social security number is 219-09-9999.", [("SSN", "219-09-9999")]),
    ("route 10.0.0.0/24 via 10.0.0.1", [("IP_ADDRESS", "10.0.0.0"), ("IP_ADDRESS", "10.0.0.1")]),
    ("IP=172.16.254.1", [("IP_ADDRESS", "172.16.254.1")]),
    ("(192.168.1.20)", [("IP_ADDRESS", "192.168.1.20")]),
    ("Host 2001:DB8:0:0:8:800:200C:417A is up", [("IP_ADDRESS", "2001:DB8:0:0:8:800:200C:417A")]),
    ("ping fe80::1%eth0", [("IP_ADDRESS", "fe80::1")]),
    ("mapped ::ffff:192.0.2.128 address", [("IP_ADDRESS", "::ffff:192.0.2.128")]),
    ("Use 8.8.8.8 style public resolvers? No, our policy is internal DNS.", [("IP_ADDRESS", "8.8.8.8")]),
    ("alice,415-555-0123,alice@example.com", [("PHONE", "415-555-0123"), ("EMAIL", "alice@example.com")]),
    ("2024-05-01 415-555-0125 called about the outage", [("PHONE", "415-555-0125")]),
    ("10:30 415-555-0127 rang twice", [("PHONE", "415-555-0127")]),
    # Captured request bodies still carry JSON escapes such as \n and \t.
    (r'{"content":"numbers:\n415-555-0126\n\t4111111111111111\nfe80::1\n"}',
     [("PHONE", "415-555-0126"), ("CREDIT_CARD", "4111111111111111"), ("IP_ADDRESS", "fe80::1")]),
    ("| Alice | 415-555-0128 | alice@example.com |", [("PHONE", "415-555-0128"), ("EMAIL", "alice@example.com")]),
    ("my cell # is 415 555 0132", [("PHONE", "415 555 0132")]),
    ("Phone #: 4155550134", [("PHONE", "4155550134")]),
    ("call me about order 12, 415-555-0135", [("PHONE", "415-555-0135")]),
    ("nic 00:1a:2b:3c:4d:5e, up", [("MAC_ADDRESS", "00:1a:2b:3c:4d:5e")]),
    ("OPENAI_API_KEY=sk-abc123def456ghi789jkl012mno345", [("SECRET", "sk-abc123def456ghi789jkl012mno345")]),
    ("Authorization: token ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5", [("SECRET", "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5")]),
    ("webhook https://hooks.slack.com/services/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",
     [("SECRET", "T0A1B2C3D/B4E5F6G7H/aB3dE5fG7hI9jK1lM3nO5pQ7")]),
    ("password=Hunter2!", [("SECRET", "Hunter2!")]),
    ("pwd: s3cr3tPass", [("SECRET", "s3cr3tPass")]),
    ('{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}', [("SECRET", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")]),
    ("key AKIAIOSFODNN7EXAMPLE leaked", [("SECRET", "AKIAIOSFODNN7EXAMPLE")]),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----",
     [("SECRET", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----")]),
]

HAND_NEG = [
    "Call me at 10:30 tomorrow.",
    "Call 911 in an emergency.",
    "Phone model iPhone 15 Pro, iOS 17.4.1",
    "My phone number ends in 0123.",
    "call extension 4421",
    "The phone costs $1,299 and has 256 GB.",
    "Call center handled 1,234,567 calls in 2023.",
    "Phone: see the contact page.",
    "The call took 1234567 ms to finish.",
    "Text length is 1234567 characters.",
    "We received 4155550123 calls last year.",
    "Dates: 2024.05.01, 20240501, 2024-W18, Q3 2024",
    "Flight LH 400 on 2024-05-01 at 10:30",
    "Version 10.0.0.1 of the firmware is out.",
    "Firmware 1.0.0.5 fixes it.",
    "Run tests on 4 8 15 16 23 42",
    "The product code 978-0-306-40615-7 is on the back.",
    "Order 123-45-6789 shipped yesterday.",
    "Meeting at 9:30-10:45 in room 4.",
    "Use port 5432 and host db.internal",
    "Latitude 37.422, longitude -122.084",
    "compile with -O2 -march=x86-64-v3",
    "md5 d41d8cd98f00b204e9800998ecf8427e",
    "base64 aGVsbG8gd29ybGQ=",
    "Bearer tokens are described in RFC 6750.",
    "See RFC 5322 section 3.4.1",
    "Node 20.11.1, npm 10.2.4",
    "Open between 9 and 5, Mon-Fri",
    "ID A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D in the logs",
    "de:ad:be:ef is a classic magic value",
    "timestamps like 10:30:45:12 in the video",
    "support@example has no TLD",
    "{{ user.email }} is filled in by the template",
    "Thanks @alice_smith for the review!",
    "IMEI 490154203237518 on the box",
    "ICCID 8944500102198304826 on the SIM",
    "Amazon order 112-1234567-1234567",
    "EAN 4006381333931 barcode",
    "Give me 5 examples with 3 variants each, 12 total.",
    "The fix landed in PR #48213 and release 2024.05.2.",
    "Intel Core i7-12700H @ 2.30GHz",
    "resolution 2560x1440 @ 144Hz",
    "The equation 415 - 555 = -140 is trivial.",
    "Price list: 1 234 567 Ft for the flat",
    "Room 1204, building 7, floor 12",
    "That's 1-2-3 easy steps.",
    "The 2024-2025 season starts in August.",
    "Keys like sk-... must never be pasted here.",
    "Password must contain at least 8 characters and 1 digit.",
]

# ---------------------------------------------------------------- assembly

def fill(template, v):
    return template.replace("{v}", v)


def pii_lines():
    lines = []

    def add(text, ents):
        lines.append({"text": text, "entities": [{"type": t, "value": v} for t, v in ents]})

    email_t = ["Hi, my email is {v}, please reset my password.", "Can you send the invoice to {v}?",
               "Contact: {v}", "ping me at <{v}> when it's fixed", "From: Jane Roe <{v}>",
               "{v} wrote: thanks, that solved it!", "Email me at {v}.",
               '{{"user": {{"name": "Jane", "email": "{v}"}}}}', "Mon adresse est {v}, merci.",
               "Please update my login from old@example.net to {v}",
               "mailto:{v}?subject=Refund", "Reply-To: {v}"]
    for i in range(48):
        t = email_t[i % len(email_t)]
        v = email()
        if "old@example.net" in t:
            add(fill(t.replace("{{", "{").replace("}}", "}"), v), [("EMAIL", "old@example.net"), ("EMAIL", v)])
        else:
            add(fill(t.replace("{{", "{").replace("}}", "}"), v), [("EMAIL", v)])
    for i in range(6):
        a, b = email(), email()
        add(f"Please cc {a} and {b} on the thread.", [("EMAIL", a), ("EMAIL", b)])

    for i in range(110):
        v, country = phone()
        t = R.choice(PHONE_TEMPLATES[country])
        add(fill(t, v), [("PHONE", v)])
    for i in range(18):
        v = bare_phone_value()
        add(fill(BARE_PHONE[i % len(BARE_PHONE)], v), [("PHONE", v)])

    for i in range(50):
        v = card()
        t = CARD_TEMPLATES[i % len(CARD_TEMPLATES)].replace("{{", "{").replace("}}", "}")
        add(fill(t, v), [("CREDIT_CARD", v)])

    for i in range(48):
        v = iban()
        add(fill(IBAN_TEMPLATES[i % len(IBAN_TEMPLATES)], v), [("IBAN", v)])

    for i in range(42):
        a, g, s = ssn_parts()
        style = i % 6
        v = f"{a} {g} {s}" if style == 4 else (f"{a}{g}{s}" if style == 5 else f"{a}-{g}-{s}")
        t = SSN_TEMPLATES[i % len(SSN_TEMPLATES)] if style != 5 else "SSN: {v}"
        add(fill(t, v), [("SSN", v)])

    for i in range(36):
        v = ipv4()
        add(fill(IP4_TEMPLATES[i % len(IP4_TEMPLATES)], v), [("IP_ADDRESS", v)])
    for i in range(24):
        v = ipv6()
        add(fill(IP6_TEMPLATES[i % len(IP6_TEMPLATES)], v), [("IP_ADDRESS", v)])

    for i in range(40):
        v = mac()
        add(fill(MAC_TEMPLATES[i % len(MAC_TEMPLATES)], v), [("MAC_ADDRESS", v)])

    for i in range(90):
        text, vals = secret_line()
        add(text, [("SECRET", v) for v in vals])

    # Mixed support requests with several kinds in one message.
    for i in range(24):
        e = email()
        p, _ = phone()
        c = card()
        k = i % 4
        if k == 0:
            add(f"Hello, I'm Jane. Email {e}, phone {p}. My card {c} was charged twice.",
                [("EMAIL", e), ("PHONE", p), ("CREDIT_CARD", c)])
        elif k == 1:
            ip = ipv4()
            add(f"Account {e} got locked after a login from {ip}; call me on {p}.",
                [("EMAIL", e), ("IP_ADDRESS", ip), ("PHONE", p)])
        elif k == 2:
            a, g, s = ssn_parts()
            ssn = f"{a}-{g}-{s}"
            ib = iban()
            add(f"For the payroll form: SSN {ssn}, IBAN {ib}, contact {e}.",
                [("SSN", ssn), ("IBAN", ib), ("EMAIL", e)])
        else:
            m = mac()
            text, vals = secret_line()
            add(f"Device {m} on my desk. Also: {text}",
                [("MAC_ADDRESS", m)] + [("SECRET", v) for v in vals])
    return lines


def main():
    pii = pii_lines()
    neg = [{"text": t, "entities": []} for t in PROSE + hard_negatives()]
    # Chat padding: realistic PII-free follow-ups, deterministic variations.
    follow = ["Thanks!", "That makes sense.", "Can you elaborate on the second point?",
              "Still not working, any other ideas?", "Perfect, thank you so much.",
              "Could you give an example?", "OK, trying that now.", "Never mind, found it."]
    while len(neg) < len(pii) + 40:
        neg.append({"text": R.choice(PROSE) + " " + R.choice(follow), "entities": []})
    pii += [{"text": t, "entities": [{"type": k, "value": v} for k, v in e]} for t, e in HAND_PII]
    neg += [{"text": t, "entities": []} for t in HAND_NEG]
    rows = pii + neg
    R.shuffle(rows)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "pii_corpus.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} lines: {len(pii)} with PII, {len(neg)} without")


if __name__ == "__main__":
    main()
