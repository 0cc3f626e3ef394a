"""Builds tests/data/token_counts.json: request/response pairs of the shapes
real traffic has, made of real texts found on a Debian machine (license
texts, Python's own documentation and source, this repository's Rust code,
translated program messages in eight languages), with their token counts by
OpenAI's tokenizers.

Run from the repository root: python3 tests/data/gen_token_counts.py tests/data/token_counts.json
It needs `pip install tiktoken` and the cl100k_base and o200k_base BPE files.
Without internet, take them from the tiktoken-rs crate's `assets/` folder and
put them in $TIKTOKEN_CACHE_DIR under the SHA-1 of their download URL;
tiktoken checks them against their published SHA-256 hashes.

Prompt counts follow OpenAI's documented chat framing (3 tokens per message
besides its role and content, 1 per name, 3 to prime the reply). Tool
definitions are rendered the way the API puts them in the system message, as
found by probing it (an approximation, not measured here). The Responses
API's framing is assumed to be chat's, with instructions as the system
message.
"""
import gettext, inspect, json, os, random, re, sys, textwrap
import tiktoken

random.seed(7)
ENC = {n: tiktoken.get_encoding(n) for n in ["cl100k_base", "o200k_base"]}

def paras(text, lo=200, hi=1500):
    out = [p.strip() for p in re.split(r"\n\s*\n", text) if lo <= len(p.strip()) <= hi]
    return out

lic = paras(open("/usr/share/common-licenses/Apache-2.0").read()) + paras(open("/usr/share/common-licenses/GPL-3").read())
import json as _j, textwrap as _t, argparse, http.client, collections, asyncio, subprocess, logging, pathlib, datetime, decimal, csv, sqlite3, email, unittest, functools, itertools
mods = [_j, _t, argparse, http.client, collections, asyncio, subprocess, logging, pathlib, datetime, decimal, csv, sqlite3, email, unittest, functools, itertools]
docs = []
for m in mods:
    if m.__doc__: docs += paras(m.__doc__, 120, 1500)
    for name, obj in inspect.getmembers(m):
        d = getattr(obj, "__doc__", None)
        if isinstance(d, str) and (inspect.isfunction(obj) or inspect.isclass(obj)):
            docs += paras(inspect.cleandoc(d), 120, 1200)
docs = sorted(set(docs))
random.shuffle(docs)
code = []
for f in [_t.wrap, _t.dedent, _j.dumps, functools.lru_cache, itertools.__dict__.get("batched") or _t.indent, csv.DictReader.__init__, logging.basicConfig, pathlib.Path.glob, collections.namedtuple]:
    try:
        s = inspect.getsource(f)
        code.append(s[:2500])
    except Exception:
        pass
rust = []
for p in ["src/capture/hash.rs", "src/capture/id.rs", "src/shutdown.rs", "src/proxy/idle.rs"]:
    src = open(os.path.join(os.path.dirname(__file__), "..", "..", p)).read()
    for fn in re.findall(r"\n((?:    )?(?:pub )?fn [\s\S]+?\n(?:    )?\}\n)", src):
        if 200 < len(fn) < 2000: rust.append(fn)
random.shuffle(rust)

def mo(lang, dom):
    t = gettext.translation(dom, "/usr/share/locale", [lang])
    return [v for k, v in t._catalog.items() if isinstance(k, str) and k and 40 < len(v) < 400 and "%" not in v]
foreign = {l: mo(l, d) for l, d in [("de", "apt"), ("fr", "apt"), ("es", "coreutils"), ("ru", "apt"), ("ja", "apt"), ("zh_CN", "apt"), ("pt_BR", "coreutils"), ("it", "coreutils")]}

def n(text, enc):
    return len(ENC[enc].encode(text))

def chat_prompt(req, enc):
    # OpenAI's documented count: 3 tokens per message (its role and
    # separators), 1 more when it has a name, 3 to prime the reply.
    total = 3
    for m in req["messages"]:
        total += 3 + n(m["role"], enc) + n(m["content"], enc)
        if "name" in m: total += 1 + n(m["name"], enc)
    if "tools" in req:
        # The TypeScript-like rendering of the definitions the API puts in
        # the system message; 9 tokens of wrapper, 4 fewer when there is a
        # system message already (as community counters found by probing).
        total += n(tools_typescript(req["tools"]), enc) + 9
        if any(m["role"] == "system" for m in req["messages"]): total -= 4
    return total

def tools_typescript(tools):
    out = ["namespace functions {", ""]
    for t in tools:
        f = t["function"]
        if f.get("description"): out.append("// " + f["description"])
        props = f.get("parameters", {}).get("properties", {})
        req = set(f.get("parameters", {}).get("required", []))
        if props:
            out.append(f"type {f['name']} = (_: {{")
            for k, v in props.items():
                if v.get("description"): out.append("// " + v["description"])
                ty = " | ".join(json.dumps(e) for e in v["enum"]) if "enum" in v else v.get("type", "any")
                out.append(f"{k}{'' if k in req else '?'}: {ty},")
            out.append("}) => any;")
        else:
            out.append(f"type {f['name']} = () => any;")
        out.append("")
    out.append("} // namespace functions")
    return "\n".join(out)

pairs = []
def add(kind, name, req, completion_text):
    pairs.append({"name": name, "endpoint": kind, "request": req, "output": completion_text})

SYSTEMS = [
    "You are a helpful assistant for Acme Cloud. Answer briefly and cite the documentation when you can.",
    "You are a support agent for an online bookstore. Be polite, ask for the order number when it is missing, and never promise refunds.",
    "You are a senior Python reviewer. Point out bugs first, then style. Answer in Markdown.",
    "Answer using only the context below. If the answer is not in the context, say you do not know.",
    "You are a translator. Translate the user's text into English, keeping the formatting.",
]
QUESTIONS = ["What does this mean for me?", "Can you summarize this in two sentences?", "hi, my order hasn't arrived yet, it's been 12 days", "How do I reset my password?", "Is there a limit on the number of API keys per project?", "What changed between version 2.3 and 2.4?", "why is my build failing with exit code 137", "thanks!"]

# 1. Short support chats.
for i in range(6):
    add("chat", f"support-{i}", {"model": "gpt-4o", "messages": [{"role": "system", "content": SYSTEMS[i % 2]}, {"role": "user", "content": QUESTIONS[i]}]}, docs[i][:400])
# 2. RAG: a context chunk and a question.
for i in range(6):
    ctx = "\n\n".join(lic[3*i:3*i+3]) if i % 2 == 0 else "\n\n".join(docs[10+3*i:13+3*i])
    add("chat", f"rag-{i}", {"model": "gpt-4o", "messages": [{"role": "system", "content": SYSTEMS[3]}, {"role": "user", "content": f"Context:\n{ctx}\n\nQuestion: {QUESTIONS[1+i%5]}"}]}, docs[40+i])
# 3. Code review.
for i, src in enumerate(code[:5] + rust[:4]):
    add("chat", f"code-{i}", {"model": "gpt-4o", "messages": [{"role": "system", "content": SYSTEMS[2]}, {"role": "user", "content": "Can you review this?\n\n```\n" + src + "```"}]}, docs[50+i] + "\n\n```\n" + (rust[5+i] if i % 2 else code[(i+1) % len(code)][:800]) + "```")
# 4. Multi-turn conversations.
for i in range(5):
    msgs = [{"role": "system", "content": SYSTEMS[i % 3]}]
    for t in range(2 + i):
        msgs.append({"role": "user", "content": QUESTIONS[(i+t) % len(QUESTIONS)] + " " + docs[60+5*i+t][:200]})
        msgs.append({"role": "assistant", "content": docs[90+5*i+t][:600]})
    msgs.append({"role": "user", "content": QUESTIONS[(i+3) % len(QUESTIONS)]})
    add("chat", f"multiturn-{i}", {"model": "gpt-4o", "messages": msgs}, docs[120+i][:700])
# 5. Other languages.
for lang, lines in foreign.items():
    random.shuffle(lines)
    add("chat", f"lang-{lang}", {"model": "gpt-4o", "messages": [{"role": "system", "content": SYSTEMS[4]}, {"role": "user", "content": "\n".join(lines[:6])}]}, "\n".join(lines[6:10]))
# 6. Tools.
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Get the current weather for a city.", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "search_orders", "description": "Find a customer's orders by email or order number.", "parameters": {"type": "object", "properties": {"email": {"type": "string", "description": "The customer's email address"}, "order_number": {"type": "string"}, "limit": {"type": "integer", "description": "How many orders to return, at most 50"}}, "required": []}}},
    {"type": "function", "function": {"name": "create_ticket", "description": "Open a support ticket for a problem the assistant cannot solve.", "parameters": {"type": "object", "properties": {"title": {"type": "string", "description": "One-line summary"}, "body": {"type": "string", "description": "Everything the support team needs to know"}, "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"]}}, "required": ["title", "body"]}}},
]
for i in range(4):
    tools = TOOLS[: 1 + i % 3]
    args = json.dumps({"city": "Lyon", "unit": "celsius"}) if i % 3 == 0 else json.dumps({"title": "Order not delivered", "body": docs[130+i][:300], "priority": "high"})
    add("chat", f"tools-{i}", {"model": "gpt-4o", "messages": [{"role": "system", "content": SYSTEMS[1]}, {"role": "user", "content": QUESTIONS[2+i] + " " + docs[135+i][:150]}], "tools": tools}, {"tool_call": {"name": tools[-1]["function"]["name"] if i % 3 else "get_weather", "arguments": args}})
# 7. Legacy completions and the Responses API: the prompt text alone.
for i in range(3):
    add("completions", f"completion-{i}", {"model": "gpt-3.5-turbo-instruct", "prompt": docs[140+i]}, docs[145+i])
    add("responses", f"responses-{i}", {"model": "gpt-4o", "instructions": SYSTEMS[i], "input": docs[150+i]}, docs[155+i])

for p in pairs:
    for enc in ENC:
        if p["endpoint"] == "chat":
            prompt = chat_prompt(p["request"], enc)
        elif p["endpoint"] == "completions":
            prompt = n(p["request"]["prompt"], enc)
        else:
            # Assumed framed like chat: instructions as the system message, input as the user's.
            prompt = chat_prompt({"messages": [{"role": "system", "content": p["request"]["instructions"]}, {"role": "user", "content": p["request"]["input"]}]}, enc)
        out = p["output"]
        comp = n(out, enc) if isinstance(out, str) else n(out["tool_call"]["name"], enc) + n(out["tool_call"]["arguments"], enc)
        p[enc] = {"prompt": prompt, "completion": comp}
json.dump(pairs, open(sys.argv[1], "w"), ensure_ascii=False, indent=None)
print(len(pairs), "pairs")
