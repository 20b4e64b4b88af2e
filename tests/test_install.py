#!/usr/bin/python3
"""test_install.py: Leviathan installed like a GStreamer plugin: `meson install --destdir` into a temporary
directory, then gst-inspect-1.0 finds levtextgen there, PyGObject loads Lev-1.0 from there and generates llama2.c's
greedy tokens, pkg-config's lev-1.0 compiles and links a program, the shared objects export only their public API
(liblev-1.0: the functions its installed headers declare; the plugin: its descriptor), no installed file names the
source or build tree, and each man page documents every option of its tool's --help.
Usage: test_install.py MESON BUILD_ROOT SOURCE_ROOT LEVCONVERT (LEV_FIXTURES from meson)."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from levtest import check, finish, fixture, run

MESON, BUILD, SOURCE, LEVCONVERT = sys.argv[1:5]
BUILD = os.path.realpath(BUILD)
SOURCE = os.path.realpath(SOURCE)


def one(pattern):
    """The one installed path matching a glob pattern (or None)."""
    found = sorted(glob.glob(pattern, recursive=True))
    check(len(found) == 1, f"one file for {pattern}: {found}")
    return found[0] if found else None


def exported(path):
    """The dynamic symbols a shared object defines (nm -D --defined-only)."""
    r = run(["nm", "-D", "--defined-only", path])
    check(r.returncode == 0, f"nm {path}: {r.stderr.decode()}")
    return {line.split()[-1] for line in r.stdout.decode().splitlines() if line.strip()}


def declared_in_headers(paths):
    """The functions the installed headers declare: lev_g_* prototypes and the get_type of G_DECLARE_* types."""
    names = set()
    for p in paths:
        text = open(p).read()
        names |= set(re.findall(r"^[A-Za-z_][\w \*]*?\b(lev_g_\w+)\s*\(", text, re.M))
        names |= {m + "_get_type" for m in re.findall(r"G_DECLARE_\w+_TYPE\s*\(\s*\w+\s*,\s*(\w+)", text)}
    return names


tmp = tempfile.mkdtemp(prefix="lev-install-")
try:
    dest = os.path.join(tmp, "dest")
    r = run([MESON, "install", "-C", BUILD, "--destdir", dest, "--no-rebuild", "--quiet"], timeout=300)
    check(r.returncode == 0, f"meson install: {r.stdout.decode()} {r.stderr.decode()}")
    info = json.load(open(os.path.join(BUILD, "meson-info", "intro-buildoptions.json")))
    opt = {o["name"]: o["value"] for o in info}
    root = dest + opt["prefix"]
    libdir = os.path.join(root, opt["libdir"])

    plugin = one(os.path.join(libdir, "gstreamer-1.0", "libgstleviathan.so"))
    liblev = one(os.path.join(libdir, "liblev-1.0.so.0"))
    typelib = one(os.path.join(libdir, "girepository-1.0", "Lev-1.0.typelib"))
    headers = sorted(glob.glob(os.path.join(root, opt["includedir"], "leviathan", "*.h")))
    check(os.path.exists(os.path.join(root, opt["datadir"], "leviathan", "models", "default.leviathan")),
          "the default model is installed")

    # --- exported symbols: the plugin's descriptor only; liblev-1.0 exactly the API its installed headers declare
    check(exported(plugin) == {"gst_plugin_leviathan_get_desc"}, f"plugin exports {sorted(exported(plugin))[:20]}")
    api = declared_in_headers(headers)
    got = exported(liblev)
    check(len(api) > 10 and got == api,
          f"liblev-1.0 exports beyond its headers: {sorted(got - api)[:20]}; declared, not exported: "
          f"{sorted(api - got)}")

    # --- reproducible: no installed file names the source or the build tree
    for dirpath, _dirs, files in os.walk(dest):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.islink(p):
                continue
            data = open(p, "rb").read()
            for tree in {BUILD, SOURCE}:
                check(tree.encode() not in data, f"{p[len(dest):]} holds the path {tree}")

    # --- gst-inspect-1.0 finds the installed plugin where GST_PLUGIN_PATH says (README.md, "Install")
    env = dict(os.environ, GST_PLUGIN_PATH_1_0=os.path.dirname(plugin), GST_PLUGIN_SYSTEM_PATH_1_0="",
               GST_REGISTRY_1_0=os.path.join(tmp, "registry.bin"))
    env.pop("GST_PLUGIN_PATH", None)
    r = run(["gst-inspect-1.0", "levtextgen"], env=env, timeout=120)
    out = r.stdout.decode()
    check(r.returncode == 0 and "Leviathan text generator" in out, f"gst-inspect-1.0 levtextgen: {out[:300]}"
          f"{r.stderr.decode()}")
    check(plugin in out, "gst-inspect-1.0 names the installed plugin's file")
    check(re.search(r"Author\s+.*<\S+>", out) is not None, "the element's Author has an address")

    # --- PyGObject: Lev-1.0 from the installed typelib and library; llama2.c's run.c greedy tokens
    model = os.path.join(tmp, "stories.leviathan")
    r = run([LEVCONVERT, fixture("stories260K/stories260K.bin"), "--tokenizer", fixture("stories260K/tok512.bin"),
             "-o", model, "-q"], timeout=120)
    check(r.returncode == 0, f"levconvert: {r.stderr.decode()}")
    case = [c for c in json.load(open(fixture("stories260K/expected/greedy_n64.json"))) if c["prompt"] == "Lily"][0]
    script = r"""
import json, sys
import gi
gi.require_version("Lev", "1.0")
gi.require_version("GIRepository", "2.0")
from gi.repository import GIRepository, Lev
model = Lev.Model.new(sys.argv[1])
gen = Lev.Generator.new(model)
gen.props.temperature = 0.0
gen.props.n_threads = 1
gen.props.max_tokens = int(sys.argv[2])
ids = []
gen.connect("token", lambda _g, _text, tid: ids.append(tid))
gen.generate(sys.argv[3], None)
maps = [l.split()[-1] for l in open("/proc/self/maps") if "liblev-1.0" in l]
print(json.dumps({"ids": ids, "default": Lev.Model.default_path(), "typelib": GIRepository.Repository.get_default().get_typelib_path("Lev"),
                  "lib": sorted(set(maps))}))
"""
    n_gen = case["steps"] - len(case["prompt_tokens"]) + 1
    penv = dict(os.environ, GI_TYPELIB_PATH=os.path.dirname(typelib), LD_LIBRARY_PATH=libdir)
    penv.pop("LEV_MODEL", None)
    r = run(["/usr/bin/python3", "-c", script, model, str(n_gen), case["prompt"]], env=penv, timeout=120)
    check(r.returncode == 0, f"PyGObject on the installed files: {r.stderr.decode()}")
    if r.returncode == 0:
        res = json.loads(r.stdout)
        check(res["typelib"] == typelib, f"typelib loaded from {res['typelib']}")
        check(len(res["lib"]) == 1 and os.path.realpath(res["lib"][0]).startswith(dest),
              f"liblev-1.0 loaded from {res['lib']}")
        # installed, the library's default model is the prefix's (not the source tree's, though it exists)
        check(res["default"] == os.path.join(opt["prefix"], opt["datadir"], "leviathan", "models", "default.leviathan"),
              f"Lev.Model.default_path() of the installed library: {res['default']}")
        check(res["ids"] == case["tokens"][len(case["prompt_tokens"]):],
              f"greedy ids through the installed Lev-1.0: {res['ids'][:12]}...")

    # --- pkg-config: lev-1.0 compiles and links a program against the installed header and library
    pcdir = os.path.join(libdir, "pkgconfig")
    one(os.path.join(pcdir, "lev-1.0.pc"))
    penv = dict(os.environ, PKG_CONFIG_PATH=pcdir)
    r = run(["pkg-config", "--modversion", "lev-1.0"], env=penv)
    version = json.load(open(os.path.join(BUILD, "meson-info", "intro-projectinfo.json")))["version"]
    check(r.returncode == 0 and r.stdout.decode().strip() == version,
          f"pkg-config --modversion lev-1.0: {r.stdout.decode()} {r.stderr.decode()}")
    r = run(["pkg-config", "--cflags", "--libs", "lev-1.0"], env=penv)
    # the flags as an installed system would use them, the prefix's directories found under the DESTDIR
    flags = [f[:2] + dest + f[2:] if f[:2] in ("-I", "-L") and f[2:].startswith(opt["prefix"]) else f
             for f in r.stdout.decode().split()]
    check(r.returncode == 0 and "-llev-1.0" in flags and any(f.startswith("-I" + dest) for f in flags),
          f"pkg-config --cflags --libs lev-1.0: {r.stdout.decode()} {r.stderr.decode()}")
    src = os.path.join(tmp, "uselev.c")
    with open(src, "w") as f:
        f.write('#include <leviathan/levg.h>\n#include <stdio.h>\n'
                'int main (int argc, char **argv) {\n  GError *error = NULL;\n'
                '  LevGModel *m = lev_g_model_new (argv[1], &error);\n'
                '  if (!m) { fprintf (stderr, "%s\\n", error->message); return 1; }\n'
                '  printf ("%u\\n", lev_g_model_get_vocab_size (m));\n  g_object_unref (m);\n  return 0;\n}\n')
    cc = shutil.which(os.environ.get("CC", "cc")) or "cc"
    exe = os.path.join(tmp, "uselev")
    r = run([cc, src, "-o", exe] + flags)
    check(r.returncode == 0, f"compiling against lev-1.0: {r.stderr.decode()}")
    r = run([exe, model], env=dict(os.environ, LD_LIBRARY_PATH=libdir))
    check(r.returncode == 0 and r.stdout.decode().strip() == "512", f"uselev: {r.stdout.decode()} "
          f"{r.stderr.decode()}")

    # --- man pages: one per tool, documenting every long option of its --help
    for tool in ["levrun", "levconvert", "levppl", "levbench"]:
        page = one(os.path.join(root, opt["mandir"], "man1", tool + ".1"))
        exe = one(os.path.join(root, opt["bindir"], tool))
        if not page or not exe:
            continue
        text = open(page).read().replace("\\-", "-")
        check(text.startswith(".\\\"") and f".TH {tool.upper()} \"1\"" in text, f"{tool}.1 is a man page")
        r = run([exe, "--help"])
        options = set(re.findall(r"^\s+(?:-\w, )?--([a-z][a-z0-9-]*)", r.stdout.decode(), re.M))
        missing = sorted(o for o in options if "--" + o not in text)
        check(len(options) > 5 and not missing, f"{tool}.1 lacks {missing}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
finish()
