#!/usr/bin/python3
"""check-layout.py: the source tree keeps the shape HACKING.md describes.

HACKING.md's "Layout of the source tree" block lists every file of src/
under a numbered layer ("# 1 common ground ...").  This check reads that
block and the tree, and fails when
  - a file of src/ is not listed, or a listed file does not exist;
  - a file includes the header of a higher layer (a call up the layers
    goes through a function pointer handed down instead);
  - the includes among src/ files form a circle, even within one layer;
  - a file has more than MAX_FILE lines, or a function body more than
    MAX_FUNC lines;
  - a file does not open with its purpose paragraph (a comment of at
    least two lines).
Usage: check-layout.py SRCDIR (the directory holding src/ and HACKING.md).
"""
import os
import re
import sys

MAX_FILE = 900
MAX_FUNC = int(os.environ.get("MAX_FUNC", "100"))


def read_layers(hacking):
    """Map of file name -> (layer number, layer name) from HACKING.md."""
    layers, layer, inside, section = {}, None, False, False
    with open(hacking, encoding="utf-8") as f:
        for line in f:
            if line.startswith("### Layout of the source tree"):
                section = True
                continue
            if not section:
                continue
            if line.startswith("```"):
                if inside:
                    break
                inside = True
                continue
            if not inside:
                continue
            m = re.match(r"# (\d+) (.*)", line)
            if m:
                layer = (int(m.group(1)), m.group(2).strip())
                continue
            m = re.match(r"src/(\S+)\s", line)
            if m and layer is not None:
                for name in m.group(1).split(","):
                    layers[name] = layer
    return layers


def module(name):
    return os.path.splitext(name)[0]


def includes(path):
    with open(path, encoding="utf-8") as f:
        return re.findall(r'^#include "([^"]+)\.h"', f.read(), re.M)


def find_cycle(graph):
    """One include circle as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def long_functions(path):
    """(name, first line, body lines) of each function over MAX_FUNC."""
    out, name, start = [], None, None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"([A-Za-z_]\w*)\(", line)
        if m:
            name = m.group(1)
        if line == "{" and name is not None:
            start = i
        elif line.startswith("}") and start is not None:
            body = i - start - 1
            if body > MAX_FUNC:
                out.append((name, start + 1, body))
            start, name = None, None
    return out


def has_purpose(path):
    with open(path, encoding="utf-8") as f:
        head = f.read()
    m = re.match(r"/\*(.*?)\*/", head, re.S)
    return m is not None and len(m.group(1).strip().split("\n")) >= 2


def main(top):
    src = os.path.join(top, "src")
    layers = read_layers(os.path.join(top, "HACKING.md"))
    problems = []
    files = sorted(n for n in os.listdir(src)
                   if n.endswith((".c", ".h")) and n != "config.h")
    listed = {n for n in layers}
    for n in files:
        if n not in listed and module(n) + ".c" not in listed and \
                module(n) + ".h" not in listed:
            problems.append(f"src/{n} is in no layer of HACKING.md's layout")
    for n in sorted(listed):
        if not os.path.exists(os.path.join(src, n)):
            problems.append(f"HACKING.md lists src/{n}, which does not exist")
    layer_of = {module(n): layers[n] for n in layers}
    graph = {}
    for n in files:
        path = os.path.join(src, n)
        me = module(n)
        for inc in includes(path):
            if inc == me or inc == "config" or inc not in layer_of:
                continue
            graph.setdefault(me, set()).add(inc)
            if me in layer_of and layer_of[inc][0] > layer_of[me][0]:
                problems.append(
                    f"src/{n} ({layer_of[me][1]}) includes {inc}.h, "
                    f"a higher layer ({layer_of[inc][1]})")
        with open(path, encoding="utf-8") as f:
            count = sum(1 for _ in f)
        if count > MAX_FILE:
            problems.append(f"src/{n} has {count} lines, over {MAX_FILE}")
        for name, line, body in long_functions(path):
            problems.append(f"src/{n}:{line} {name}() is {body} lines, "
                            f"over {MAX_FUNC}")
        if n.endswith(".c") and not has_purpose(path):
            problems.append(f"src/{n} does not open with its purpose")
    while True:
        cycle = find_cycle(graph)
        if not cycle:
            break
        problems.append("include circle: " + " -> ".join(cycle))
        graph[cycle[-2]].discard(cycle[-1])
    for p in problems:
        print("FAIL: " + p)
    print(f"check-layout: {len(files)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
