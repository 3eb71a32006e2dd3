#!/usr/bin/env python3
"""Import-graph check: no import circles between the modules of any workspace crate, and
the plugin-family crates build on rolekd-core alone (python3 standard library only).

Modules. Every crate target root (src/lib.rs, src/main.rs) is read with the files its
`mod x;` declarations name (x.rs or x/mod.rs, beside the file or in its own folder).
One file is one node: an inline `mod x { ... }` (a `#[cfg(test)] mod tests { ... }`
among them) is part of its file, so its `use super::*` is no edge. A `mod` declaration is
structure, not an edge: a parent holding a child does not depend on it, so a test module
in its own file (`#[cfg(test)] mod tests;`) that uses its parent's items makes no circle.

Edges. From a file to the module a path names, for every path in a `use` (groups
expanded, `self`, `*` and `as` understood) and every `crate::...`, `super::...`,
`self::...` or `<child module>::...` path in code. Comments and literals are skipped, so
doc links are not edges. A path resolves to its longest prefix that is a module:
`crate::a::b::f` is an edge to `a::b` when a/b.rs exists, else to `a`.

Re-exports. A `pub use` in a mod.rs or lib.rs is that module's own surface: it is an edge
from the module to the child it re-exports from, and an import of `crate::a::X` where
a/mod.rs re-exports `X` from `a::b` is an edge to `a`, not to `a::b`. So a child that
imports a sibling's item through its parent's surface, while the parent re-exports
something of the child, is a circle (import from the sibling itself instead).

Circles are the strongly connected components of more than one module; each is printed
with its files and the lines that make its edges. Exit status 1 when there is one, or when
a crate rule fails.

Crate rules (from `cargo metadata --format-version 1 --no-deps`): rolekd-data,
rolekd-models, rolekd-augment, rolekd-kd and rolekd-optim do not depend on rolekd-engine
(normal or build dependencies; a dev-dependency only lets a test run a plugin under the
engine and is listed as a note), and rolekd-core depends on no rolekd crate.

Usage: scripts/import-graph.py [--quiet]   (from anywhere inside the workspace)
"""

import json
import os
import re
import subprocess
import sys

PLUGIN_FAMILY = ["rolekd-data", "rolekd-models", "rolekd-augment", "rolekd-kd", "rolekd-optim"]
ENGINE = "rolekd-engine"
CORE = "rolekd-core"

CHAR_LITERAL = re.compile(r"'(?:\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|\\.|[^\\'\n])'")
RAW_STRING = re.compile(r'b?r(#*)"')


def strip(code):
    """The code with comments, string and char literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(code)

    def blank(text):
        return "".join(c if c == "\n" else " " for c in text)

    while i < n:
        c = code[i]
        if code.startswith("//", i):
            j = code.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(code[i:j]))
            i = j
        elif code.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if code.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif code.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(code[i:j]))
            i = j
        elif (m := RAW_STRING.match(code, i)) and (i == 0 or not (code[i - 1].isalnum() or code[i - 1] == "_")):
            end = '"' + m.group(1)
            j = code.find(end, m.end())
            j = n if j < 0 else j + len(end)
            out.append(blank(code[i:j]))
            i = j
        elif c == '"' or (c == "b" and code.startswith('b"', i) and (i == 0 or not code[i - 1].isalnum())):
            j = i + (2 if c == "b" else 1)
            while j < n and code[j] != '"':
                j += 2 if code[j] == "\\" else 1
            out.append(blank(code[i : j + 1]))
            i = j + 1
        elif c == "'" and (m := CHAR_LITERAL.match(code, i)):
            out.append(blank(m.group(0)))
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(code, open_at):
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code)


def line_of(code, pos):
    return code.count("\n", 0, pos) + 1


# --- use trees -------------------------------------------------------------------------

USE_TOKEN = re.compile(r"\s*(::|[{},*;]|[A-Za-z_$][A-Za-z0-9_]*)")


def use_paths(tree):
    """The full paths (lists of segments) a `use` tree names."""
    tokens = []
    pos = 0
    while pos < len(tree):
        m = USE_TOKEN.match(tree, pos)
        if not m:
            pos += 1
            continue
        tokens.append(m.group(1))
        pos = m.end()
    paths, _ = parse_tree(tokens, 0, [])
    return paths


def parse_tree(tokens, i, prefix):
    path = list(prefix)
    paths = []
    while i < len(tokens):
        t = tokens[i]
        if t == "::":
            i += 1
        elif t == "{":
            i += 1
            while i < len(tokens) and tokens[i] != "}":
                sub, i = parse_tree(tokens, i, path)
                paths.extend(sub)
                if i < len(tokens) and tokens[i] == ",":
                    i += 1
            return paths, i + 1
        elif t in (",", "}"):
            break
        elif t == "as":
            i += 2  # the alias
        elif t == "*":
            path.append("*")
            i += 1
        else:
            path.append(t)
            i += 1
    if path != list(prefix):
        paths.append(path)
    return paths, i


# --- modules ---------------------------------------------------------------------------

MOD_DECL = re.compile(r"(?<![A-Za-z0-9_])mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*([;{])")
USE_STMT = re.compile(r"(?<![A-Za-z0-9_])((?:pub(?:\s*\([^)]*\))?\s+)?)use\s+([^;]+);")
CODE_PATH = re.compile(r"(?<![A-Za-z0-9_:$])((?:crate|super|self|[a-z_][a-z0-9_]*)(?:\s*::\s*[A-Za-z_][A-Za-z0-9_]*)+)")


class Crate:
    def __init__(self, name, root):
        self.name = name
        self.root = root
        self.files = {}  # module path (tuple) -> file
        self.inline = set()  # inline module paths
        self.stripped = {}  # file -> stripped text
        self.scopes = {}  # file -> [(start, end, inline path)]
        self.edges = {}  # (from, to) -> [(file, line, text)]
        self.discover((), root)

    def discover(self, path, file):
        if not os.path.exists(file):
            return
        self.files[path] = file
        code = strip(open(file, encoding="utf-8").read())
        self.stripped[file] = code
        base = os.path.basename(file)
        if base in ("lib.rs", "main.rs", "mod.rs"):
            folder = os.path.dirname(file)
        else:
            folder = os.path.join(os.path.dirname(file), base[:-3])
        scopes = []
        for m in MOD_DECL.finditer(code):
            name, end = m.group(1), m.group(2)
            inner = self.scope_at(scopes, m.start())
            if end == "{":
                close = matching_brace(code, m.end() - 1)
                scopes.append((m.end(), close, inner + [name]))
                self.inline.add(path + tuple(inner + [name]))
                continue
            if inner:
                continue  # `mod x;` inside an inline module: none in this workspace
            child = path + (name,)
            for cand in (os.path.join(folder, name + ".rs"), os.path.join(folder, name, "mod.rs")):
                if os.path.exists(cand):
                    self.discover(child, cand)
                    break
        self.scopes[file] = scopes

    @staticmethod
    def scope_at(scopes, pos):
        best = []
        for start, end, inner in scopes:
            if start <= pos <= end and len(inner) > len(best):
                best = inner
        return list(best)

    def is_module(self, path):
        return path in self.files or path in self.inline

    def file_module(self, path):
        """The node (file) a file or inline module belongs to."""
        while path not in self.files:
            path = path[:-1]
        return path

    def resolve(self, here, segs):
        """The module `segs` names from module `here` (file path + inline path), or None."""
        if not segs or segs[0] == "$crate":
            return None
        if segs[0] == "crate":
            cur, rest = (), segs[1:]
        elif segs[0] in ("super", "self"):
            cur, rest = here, segs
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    if not cur:
                        return None
                    cur = cur[:-1]
                rest = rest[1:]
        elif self.is_module(here + (segs[0],)):
            cur, rest = here, segs
        else:
            return None  # another crate, a type, a variant
        for seg in rest:
            if seg in ("*", "self") or not self.is_module(cur + (seg,)):
                break
            cur = cur + (seg,)
        return cur

    def scan(self):
        for path, file in self.files.items():
            code = self.stripped[file]
            scopes = self.scopes[file]
            me = path
            found = []
            for m in USE_STMT.finditer(code):
                for segs in use_paths(m.group(2)):
                    found.append((m.start(), segs, m.group(0)))
            for m in CODE_PATH.finditer(code):
                segs = [s.strip() for s in m.group(1).split("::")]
                found.append((m.start(), segs, m.group(1)))
            for pos, segs, text in found:
                here = path + tuple(self.scope_at(scopes, pos))
                target = self.resolve(here, segs)
                if target is None:
                    continue
                to = self.file_module(target)
                if to == me:
                    continue
                where = (os.path.relpath(file), line_of(code, pos), " ".join(text.split()))
                self.edges.setdefault((me, to), []).append(where)

    def circles(self):
        graph = {}
        for a, b in self.edges:
            graph.setdefault(a, set()).add(b)
        return [c for c in tarjan(set(self.files), graph) if len(c) > 1]


def tarjan(nodes, graph):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def name_of(path):
    return "crate::" + "::".join(path) if path else "crate"


def crate_rules(packages):
    problems, notes = [], []
    by_name = {p["name"]: p for p in packages}
    for name in PLUGIN_FAMILY:
        pkg = by_name.get(name)
        if pkg is None:
            problems.append(f"{name}: not in the workspace")
            continue
        for dep in pkg["dependencies"]:
            if dep["name"] != ENGINE:
                continue
            if dep.get("kind") == "dev":
                notes.append(f"{name} has {ENGINE} as a dev-dependency (tests only)")
            else:
                problems.append(f"{name} depends on {ENGINE}: plugin-family crates build on {CORE} alone")
    core = by_name.get(CORE)
    for dep in core["dependencies"] if core else []:
        if dep["name"].startswith("rolekd-"):
            problems.append(f"{CORE} depends on {dep['name']}")
    return problems, notes


def main():
    quiet = "--quiet" in sys.argv[1:]
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    os.chdir(meta["workspace_root"])
    failed = False
    for pkg in sorted(meta["packages"], key=lambda p: p["manifest_path"]):
        roots = sorted(
            {t["src_path"] for t in pkg["targets"] if set(t["kind"]) & {"lib", "bin", "cdylib", "rlib"}}
        )
        for root in roots:
            crate = Crate(pkg["name"], root)
            crate.scan()
            circles = crate.circles()
            label = f"{pkg['name']} ({os.path.relpath(root)})"
            if not quiet or circles:
                print(f"{label}: {len(crate.files)} modules, {len(crate.edges)} edges, {len(circles)} circles")
            for comp in circles:
                failed = True
                print(f"  circle: {' -> '.join(name_of(p) for p in comp)}")
                members = set(comp)
                for p in comp:
                    print(f"    {name_of(p)}: {os.path.relpath(crate.files[p])}")
                for (a, b), where in sorted(crate.edges.items()):
                    if a in members and b in members:
                        f, line, text = where[0]
                        more = f" (+{len(where) - 1} more)" if len(where) > 1 else ""
                        print(f"    {name_of(a)} -> {name_of(b)}: {f}:{line}: {text}{more}")
    problems, notes = crate_rules(meta["packages"])
    for n in notes:
        print(f"note: {n}")
    for p in problems:
        failed = True
        print(f"crate rule: {p}")
    if failed:
        print("import graph: FAILED", file=sys.stderr)
        return 1
    print("import graph: no circles; plugin-family crates depend on rolekd-core only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
