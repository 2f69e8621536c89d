#!/usr/bin/env python3
"""Import cycles between the modules of one crate: prints each cycle, exits 1 if any.

    python3 scripts/modcycles.py hubs-core/src [more crate src folders...]

A module is a file (`a/b.rs` or `a/b/mod.rs` is `a::b`). An edge A -> B is a path in A's
code (a `use`, or an inline `crate::`/`super::`/`self::` path) that names B or an item of
B: the longest existing module prefix of the path, followed through `pub use` re-exports
to the module that defines the item (so `crate::Name` re-exported at the root counts as an
edge to the module defining `Name`, as rustc resolves it). Tests (`#[cfg(test)]` blocks,
`*_tests.rs`) and comments are left out: the shape is the library's.
"""
import os
import re
import sys


def modules_of(src):
    mods = {}
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith('.rs') or name.endswith('tests.rs'):
                continue
            rel = os.path.relpath(os.path.join(root, name), src)[:-3].split(os.sep)
            if rel[-1] in ('mod', 'lib', 'main'):
                rel = rel[:-1]
            mods[tuple(rel)] = os.path.join(root, name)
    return mods


def code_lines(text):
    """The file's lines without comments and without `#[cfg(test)]` items; each line with
    the inline module path (tuple) it sits in."""
    out, stack, depth, skip_from = [], [], 0, None
    pending_test = False
    for raw in text.split('\n'):
        line = re.sub(r'//.*', '', raw)
        line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
        stripped = line.strip()
        if skip_from is None and re.match(r'#\[cfg\(test\)\]', stripped):
            pending_test = True
            continue
        if pending_test and skip_from is None:
            if stripped.startswith('#['):
                continue
            if stripped:
                skip_from = depth
                pending_test = False
        m = re.match(r'(pub(\([^)]*\))?\s+)?mod\s+(\w+)\s*\{', stripped)
        opens, closes = line.count('{'), line.count('}')
        if skip_from is not None:
            depth += opens - closes
            if depth <= skip_from and (closes or stripped.endswith(';')):
                skip_from = None
            continue
        if m:
            stack.append((m.group(3), depth))
        out.append((line, tuple(s[0] for s in stack)))
        depth += opens - closes
        while stack and depth <= stack[-1][1]:
            stack.pop()
    return out


def use_paths(statement):
    """`a::{b, c::{d as f, e}}` -> [a::b, a::c::d@f, a::c::e]."""
    statement = re.sub(r'\s+as\s+(\w+)', r'@\1', statement)
    statement = re.sub(r'\s+', '', statement)
    def expand(s):
        i = s.find('{')
        if i < 0:
            return [s]
        prefix, depth, parts, cur = s[:i], 0, [], ''
        for ch in s[i + 1:s.rfind('}')]:
            if ch == ',' and depth == 0:
                parts.append(cur); cur = ''
                continue
            depth += ch == '{'
            depth -= ch == '}'
            cur += ch
        parts.append(cur)
        return [p for part in parts if part for p in expand(prefix + part)]
    return expand(statement)


def resolve(path, here, inline, mods, exports=None, seen=0):
    """The module that defines what `path` (written in module `here`) names, following
    re-exports (`pub use`) as rustc does."""
    path = path.split('@')[0]
    parts = [p for p in path.split('::') if p]
    if not parts:
        return None
    if parts[0] == 'crate':
        base, parts = (), parts[1:]
    elif parts[0] in ('super', 'self'):
        base = here
        if inline:
            # super inside an inline module is the file's module (one level of inline mod)
            if parts[0] == 'super':
                parts = parts[1:]
            else:
                return None
        while parts and parts[0] in ('super', 'self'):
            if parts[0] == 'super':
                base = base[:-1]
            parts = parts[1:]
    else:
        # a bare path: a child module of this file, if one exists
        if (here + (parts[0],)) in mods:
            base = here
        else:
            return None
    best, rest = None, []
    for n in range(len(parts) + 1):
        candidate = base + tuple(parts[:n])
        if candidate in mods:
            best, rest = candidate, parts[n:]
    if best is not None and rest and exports and seen < 20:
        target = exports.get(best, {}).get(rest[0])
        if target is not None:
            again = resolve('::'.join([target] + rest[1:]), best, False, mods, exports, seen + 1)
            if again is not None:
                return again
    return best


def edges_of(src):
    mods = modules_of(src)
    edges = {m: set() for m in mods}
    exports, texts = {}, {}
    for mod, file in mods.items():
        lines = code_lines(open(file, encoding='utf-8').read())
        text = '\n'.join(l for l, _ in lines)
        stmts = re.findall(r'\buse\s+([^;]+);', text)
        paths = [p for s in stmts for p in use_paths(s)]
        reexports = re.findall(r'\bpub(?:\([^)]*\))?\s+use\s+([^;]+);', text)
        table = {}
        for p in (p for s in reexports for p in use_paths(s)):
            path, _, alias = p.partition('@')
            last = path.split('::')[-1]
            if last not in ('*', 'self'):
                table[alias or last] = path
        exports[mod] = table
        texts[mod] = (paths, text)
    for mod, (paths, text) in texts.items():
        paths += re.findall(r'(?<![\w:])((?:crate|super|self)(?:::\w+)+)', text)
        for p in paths:
            target = resolve(p, mod, False, mods, exports)
            if target is not None and target != mod:
                edges[mod].add(target)
    return mods, edges


def cycles(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def name(m):
    return '::'.join(('crate',) + m)


def main():
    bad = 0
    for src in sys.argv[1:]:
        mods, edges = edges_of(src)
        for comp in cycles(edges):
            bad += 1
            members = set(comp)
            print(f'{src}: cycle of {len(comp)} modules:')
            for m in sorted(comp):
                ups = sorted(name(t) for t in edges[m] if t in members)
                print(f'  {name(m)} -> {", ".join(ups)}')
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
