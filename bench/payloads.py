#!/usr/bin/env python3
"""Request bodies for the realistic case of bench/run.sh (stdlib only).

Prints one chat completion request per line (JSON Lines), for oha's -Z, which
sends a line picked at random with each request. They are the shape of real
application traffic: a system prompt, some turns of history and a user message
of a few hundred bytes, with prose, a little code and numbers, 1-4 KB each.

Two of the six carry a little personal data the way real traffic does (a
customer pasting an email address and a phone number, a log line with an IP
address): the gateway redacts what it stores, and that cost is part of the
real cost. All of it is invented (example.com, a 555 number, a documentation
address block).

Usage: payloads.py               all bodies, one per line
       payloads.py --stream      the same as streaming requests ("stream": true)
       payloads.py --sizes       the size in bytes of each body
"""

import json
import sys

SUPPORT = (
    "You are the support assistant of Northwind Outfitters, an online shop for hiking and "
    "camping gear. Answer in a friendly, concise tone. You can explain orders, shipping, "
    "returns and warranty terms. Returns are accepted within 30 days of delivery for unused "
    "items; worn footwear is excluded unless it is defective. Standard shipping takes 3-5 "
    "business days, express 1-2. Never promise a refund amount before the item has been "
    "inspected, and never ask for full card numbers. If the customer is upset, acknowledge it "
    "once and move on to the solution. When you are not sure, say so and offer to hand the "
    "conversation to a human agent."
)

CODING = (
    "You are a senior software engineer helping a colleague. Prefer short, direct answers "
    "with a code example when it helps. Point out the root cause before the fix. Use the "
    "language and libraries the user already uses; do not introduce new dependencies unless "
    "asked. If the question is ambiguous, state the assumption you make."
)

ANALYST = (
    "You are a data analyst assistant for the finance team. You receive tables pasted as "
    "text (CSV or Markdown). Compute what is asked exactly, show the arithmetic for any "
    "figure you derive, round money to two decimals and percentages to one. Flag numbers "
    "that look inconsistent instead of silently correcting them."
)


def chat(system, turns, question, **extra):
    messages = [{"role": "system", "content": system}]
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    messages.append({"role": "user", "content": question})
    body = {"model": "gpt-4o-mini", "messages": messages}
    body.update(extra)
    return body


BODIES = [
    # 1. Support, short history, no personal data.
    chat(
        SUPPORT,
        [
            "Hi, I ordered the Ridgeline 45L backpack last week and it still says 'label created'.",
            "Sorry for the wait! A 'label created' status means the parcel is packed but the "
            "carrier has not scanned it yet. This usually clears within 24-48 hours. Could you "
            "tell me the order date so I can check whether it is late?",
        ],
        "I ordered it on Monday the 3rd, with standard shipping. It is Friday now. I need it "
        "for a trip that starts on the 14th, so I am a bit worried. If it will not make it, can "
        "I switch to express or cancel and buy it in a store near me instead? I would rather "
        "not pay twice.",
        temperature=0.3,
        max_tokens=400,
    ),
    # 2. Coding: a Rust borrow error with the code pasted.
    chat(
        CODING,
        [],
        "Why does this not compile? rustc says `cannot borrow `*self` as mutable because it is "
        "also borrowed as immutable` on the push line.\n\n```rust\nstruct Cache {\n    entries: "
        "Vec<(String, u64)>,\n    hits: u64,\n}\n\nimpl Cache {\n    fn lookup(&mut self, key: &str) "
        "-> Option<&u64> {\n        let found = self.entries.iter().find(|(k, _)| k == key);\n"
        "        if let Some((_, v)) = found {\n            self.hits += 1;\n            return "
        "Some(v);\n        }\n        self.entries.push((key.to_string(), 0));\n        None\n"
        "    }\n\n    fn record(&mut self, key: &str, cost: u64) {\n        match self.entries.iter_mut()"
        ".find(|(k, _)| k == key) {\n            Some((_, v)) => *v += cost,\n            None => "
        "self.entries.push((key.to_string(), cost)),\n        }\n    }\n}\n\nfn main() {\n    let "
        "mut cache = Cache { entries: Vec::new(), hits: 0 };\n    for line in std::io::stdin()."
        "lines().map_while(Result::ok) {\n        let key = line.trim();\n        if cache.lookup"
        "(key).is_none() {\n            cache.record(key, key.len() as u64);\n        }\n    }\n"
        "    println!(\"{} hits, {} entries\", cache.hits, cache.entries.len());\n}\n```\n\n"
        "I only read from `entries` in the find, and I only touch `hits` in the "
        "branch, so I do not see where the conflict is. The function is called about 2 million "
        "times per run, so I would like to avoid cloning the value or doing the lookup twice if "
        "there is a cheaper way.",
        temperature=0.2,
        user="u_48213",
    ),
    # 3. Analyst: a small table of numbers.
    chat(
        ANALYST,
        [
            "Here are Q3 sales by region.",
            "Thanks, please paste the table and tell me what you need computed.",
        ],
        "region,jul,aug,sep,target_q3\nnorth,182340.50,176920.10,191455.75,540000\nsouth,"
        "95410.00,101233.40,88760.25,300000\neast,210880.90,225010.35,240115.80,650000\nwest,"
        "130455.60,128900.00,135780.45,410000\nonline,310220.15,298765.90,342118.30,900000\n\n"
        "For each region give the Q3 total, the attainment against target in percent, and the "
        "month-over-month change from August to September. Then tell me which region is most "
        "behind target in absolute money and which grew fastest in September. The board deck "
        "is due tomorrow morning, so keep it to a short table plus two or three sentences.",
        temperature=0,
        max_tokens=800,
    ),
    # 4. Support, longer history, with an email address and a phone number.
    chat(
        SUPPORT,
        [
            "My tent pole snapped on the second night. It is the Alpine Dome 2, bought in May.",
            "I am sorry to hear that, that is no way to spend a night outdoors. The Alpine Dome "
            "2 has a two-year warranty on poles, so this should be covered. Do you still have "
            "the order number or the receipt?",
            "Yes, the order number is NW-2291-7730. The pole broke at the joint near the hub, "
            "there was no strong wind and I set it up the way the manual shows.",
            "Thank you, I found the order: Alpine Dome 2, delivered on May 12. A break at the "
            "hub joint is a known weak point of the 2023 batch, and we replace those poles "
            "free of charge. Would you like a replacement pole set or a repair kit sent to "
            "the address on the order?",
        ],
        "A replacement pole set please, but not to the address on the order, I moved in "
        "August. Please send it to my new address and keep me posted by email at "
        "jordan.miller@example.com or text 555-0142 if the courier needs to reach me. I am "
        "home most days after 4 pm. Also, is there anything I should check on the rest of the "
        "tent? I would hate for the fly to tear on the next trip, it is a two-week trek in "
        "October and the shops on the way are few and far between.",
        temperature=0.3,
        user="u_90317",
    ),
    # 5. Coding: a log excerpt with an IP address, and a follow-up.
    chat(
        CODING,
        [
            "Our nginx in front of the API returns 502 for about 1% of requests after deploys.",
            "A short burst of 502s right after a deploy usually means nginx still sends "
            "requests to upstream connections that the old process closed. Can you share the "
            "error log lines and your upstream block?",
        ],
        "Here they are, from the 14:02 deploy:\n\n```\n2026/11/30 14:02:11 [error] 2211#2211: "
        "*884213 upstream prematurely closed connection while reading response header from "
        "upstream, client: 203.0.113.57, server: api.internal, request: \"POST /v1/orders "
        "HTTP/1.1\", upstream: \"http://10.0.3.14:8080/v1/orders\"\n2026/11/30 14:02:11 [error] "
        "2212#2212: *884290 recv() failed (104: Connection reset by peer) while reading response "
        "header from upstream, client: 198.51.100.23, server: api.internal, request: \"GET "
        "/v1/orders/88123 HTTP/1.1\", upstream: \"http://10.0.3.14:8080/v1/orders/88123\"\n"
        "2026/11/30 14:02:14 [error] 2211#2211: *884377 upstream prematurely closed connection "
        "while reading response header from upstream, client: 203.0.113.57, server: "
        "api.internal, request: \"POST /v1/carts HTTP/1.1\", upstream: "
        "\"http://10.0.3.15:8080/v1/carts\"\n```\n\nOur server block:\n\n```nginx\nserver {\n"
        "    listen 443 ssl;\n    server_name api.internal;\n    location / {\n        "
        "proxy_pass http://api;\n        proxy_http_version 1.1;\n        proxy_set_header "
        "Connection \"\";\n        proxy_read_timeout 30s;\n    }\n}\n```\n\n```nginx\nupstream "
        "api {\n    server 10.0.3.14:8080;\n    server 10.0.3.15:8080;\n    keepalive 32;\n}\n"
        "```\n\nThe app is a Node 20 service behind PM2 and we reload it with `pm2 reload`. It "
        "handles roughly 900 requests per second at peak and the errors last for about 8 "
        "seconds after each reload. Is this the keep-alive timeout mismatch I keep reading "
        "about, and what values should I set on each side?",
        temperature=0.2,
    ),
    # 6. Analyst: a long conversation, the largest body.
    chat(
        ANALYST,
        [
            "Before the storage question: last quarter's cloud bill was 48210.37 in total, of "
            "which compute 29876.10, storage 11420.55, network 5103.92 and support 1809.80. Does "
            "that add up?",
            "It does: 29876.10 + 11420.55 + 5103.92 + 1809.80 = 48210.37. Storage is 23.7% of "
            "the total (11420.55 / 48210.37), compute 62.0%, network 10.6% and support 3.8%. "
            "If you want, I can break storage down by month once you paste the invoices.",
            "Not needed, thanks. The reason I ask is that storage is the line growing fastest: "
            "it was 8930.20 the quarter before, so it grew 27.9% in one quarter while compute "
            "stayed flat. Finance wants to lock in a contract before prices change in January.",
            "That growth rate matters for any multi-year comparison: 27.9% per quarter is about "
            "8.5% per month compounded, much more than a typical 2-4%. Tell me the offers and "
            "the growth you expect going forward, and I will compare them month by month.",
            "I need to compare two offers for our cloud storage, 120 TB today growing about 4% a "
            "month.",
            "Happy to help. Please give me the price components of each offer: storage per TB "
            "per month, any tiers, egress, request fees and the contract length.",
            "Offer A: 18.40 per TB-month for the first 100 TB, 15.90 above that, egress 0.05 "
            "per GB after 10 TB free per month, no request fees, 12-month term. Offer B: flat "
            "16.75 per TB-month, egress included up to 5% of stored volume, 0.40 per million "
            "requests, 36-month term with 8% off if paid yearly.",
            "Thanks. Before computing, two questions: how much do you read back each month "
            "(egress), and roughly how many requests per month? Both offers differ mostly "
            "there.",
            "Egress is about 6 TB per month now and grows with storage. Requests are around "
            "450 million per month.",
            "Then for month 1: Offer A costs 100 x 18.40 + 20 x 15.90 = 2158.00 for storage, "
            "and no egress charge since 6 TB is under the free 10 TB, so 2158.00 in total. "
            "Offer B costs 120 x 16.75 = 2010.00 for storage, egress is included (6 TB is "
            "under 5% of 120 TB = 6 TB, just at the limit) and requests add 450 x 0.40 = "
            "180.00, so 2190.00, or 2014.80 with the yearly-payment discount.",
        ],
        "Good. Now do the same for the whole first year with the 4% monthly growth applied to "
        "storage, egress and requests alike, and give me the totals for A, B and B with the "
        "yearly discount. Then tell me in which month, if any, Offer A's egress starts being "
        "charged, and what happens to B's included egress when we pass 5% of stored volume. "
        "Finally, if we expect growth to slow to 2% a month in year two, which offer is "
        "cheaper over 36 months? Round to whole currency units in the final comparison and "
        "list the assumptions you had to make.",
        temperature=0,
        user="u_20544",
    ),
]


def line(body):
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def main():
    args = sys.argv[1:]
    if args == ["--stream"]:
        for body in BODIES:
            print(line(dict(body, stream=True)))
    elif args == ["--sizes"]:
        print(" ".join(str(len(line(b).encode())) for b in BODIES))
    else:
        for body in BODIES:
            print(line(body))


if __name__ == "__main__":
    main()
