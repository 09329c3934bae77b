"""The docs say what the code does: the run-directory columns and the run-name pattern of
docs/measurement.md, the flags of every command README shows, and every default in every --help."""
from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import replace

import pytest

from bench import rundir
from tests.procs import REPO
from tests.test_cli_help import CLI_MODULES, _help_of

MEASUREMENT = (REPO / "docs" / "measurement.md").read_text()
README = (REPO / "README.md").read_text()


# ---- the run directory's columns ------------------------------------------------------------------

@pytest.mark.parametrize("name, columns", [(rundir.METRICS, rundir.METRICS_COLUMNS),
                                           (rundir.STEP_TIMES, rundir.STEP_TIMES_COLUMNS),
                                           (rundir.BN_PARAMS, rundir.BN_PARAMS_COLUMNS)])
def test_measurement_lists_each_csv_s_columns_as_rundir_writes_them(name, columns):
    row = next(line for line in MEASUREMENT.splitlines() if line.startswith(f"| `{name}` |"))
    listed = max(re.findall(r"`([a-z0-9_]+(?:, [a-z0-9_]+)+)`", row), key=len).split(", ")
    assert listed == list(columns)


# ---- the run-name pattern -------------------------------------------------------------------------

def pattern_regex(pattern: str) -> re.Pattern:
    """`<variant>` one of rundir.VARIANTS, another `<x>` a value without `-`, `[...]` an optional
    part, `|` alternatives inside one; the rest literal.

    >>> bool(pattern_regex("a-<b>[-c<n>|-d<n>]-s<seed>").fullmatch("a-x-d3-s0"))
    True
    """
    variant = "(?:" + "|".join(map(re.escape, rundir.VARIANTS)) + ")"
    out = ""
    for token in re.findall(r"<[^>]+>|\[|\]|\||[^<\[\]|]+", pattern):
        value = variant if token == "<variant>" else r"[a-z0-9]+"
        out += {"[": "(?:", "]": ")?", "|": "|"}.get(token, value if token.startswith("<") else re.escape(token))
    return re.compile(out)


def _documented_pattern() -> str:
    return re.search(r"The name is\s+`([^`]+)`", MEASUREMENT).group(1)


def _names() -> list[str]:
    """Run names bench.run.plan gives for configurations that use every part of the name."""
    from bench.run.config import TrainConfig
    from bench.run.plan import run_name

    base = TrainConfig()
    configs = [(base, 1), (replace(base, variant="scratch-sync", bn_group_size=2), 4),
               (replace(base, bn_emulate_ranks=8), 1), (replace(base, mode="graph", amp="bf16"), 2),
               (replace(base, model="resnet50", data="synthetic", channels_last=True, steps=100, amp="bf16"), 1),
               (replace(base, model="resnet18", data="imagefolder", image_size=160, mode="compile"), 8)]
    return [run_name(cfg, ws) for cfg, ws in configs]


def test_the_run_name_pattern_matches_every_name_plan_gives():
    regex = pattern_regex(_documented_pattern())
    names = _names()
    assert len(set(names)) == len(names)
    assert [n for n in names if not regex.fullmatch(n)] == []


def test_a_pattern_missing_a_part_is_caught():
    """The planted fault: the pattern without `-cl` no longer matches the channels_last name."""
    regex = pattern_regex(_documented_pattern().replace("[-cl]", ""))
    assert [n for n in _names() if not regex.fullmatch(n)] == ["resnet50-nn-ws1-b256-syn224-cl-st100-bf16-s0"]


# ---- README's commands against their parsers ------------------------------------------------------

SCRIPTS = {"launch/sweep": ("launch.sweep",), "launch/view.sh": ("launch.view",),
           "launch/multinode.sh": ("bench.train",), "launch/slurm.sbatch": ("bench.train",)}
# extra flags go on to bench.train
PASSES_ON = {"launch.compare": ("launch.compare", "bench.train"), "launch.run": ("launch.run", "bench.train")}


def commands(markdown: str) -> list[str]:
    """Command lines of fenced bash blocks and of inline code spans that start a command."""
    lines = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", markdown, flags=re.S):
        lines += [line.split("  #")[0].strip() for line in block.replace("\\\n", " ").splitlines()]
    lines += re.findall(r"`((?:python|torchrun|make compare|launch/)[^`]*)`", markdown)
    return [line for line in lines if line]


def targets(line: str) -> list[tuple[tuple[str, ...], list[str]]]:
    """(modules whose flags may appear, the flags) for one command line of this project's (not pip's,
    venv's or torchrun's own; `bench.X` is a placeholder)."""
    words = shlex.split(line.replace("[", " ").replace("]", " "))
    if words[:2] == ["make", "compare"]:
        args = next((w.split("=", 1)[1] for w in words if w.startswith("ARGS=")), "")
        return [(PASSES_ON["launch.compare"], shlex.split(args))]
    for i, word in enumerate(words):
        package, _, command = words[i + 1].partition(".") if i + 1 < len(words) else ("", "", "")
        if word == "-m" and package in ("bench", "analysis", "launch", "devtools") and command.islower():
            module, rest = words[i + 1], words[i + 2:]
            if "--" in rest:
                cut = rest.index("--")
                return [((module,), rest[:cut]), (("bench.train",), rest[cut + 1:])]
            return [(PASSES_ON.get(module, (module,)), rest)]
        if word in SCRIPTS:
            return [(SCRIPTS[word], words[i + 1:])]
    return []


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    return {}


def _help(helps: dict[str, str], module: str) -> str:
    if module not in helps:
        helps[module] = _help_of(module)
    return helps[module]


def unknown_flags(line: str, helps: dict[str, str]) -> list[str]:
    bad = []
    for modules, words in targets(line):
        text = " ".join(_help(helps, m) for m in modules)
        for flag in (w.split("=")[0] for w in words if w.startswith("-") and w != "--" and not w[1:2].isdigit()):
            if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text):
                bad.append(flag)
    return bad


def test_every_readme_command_uses_flags_its_parser_has(helps):
    lines = commands(README)
    assert len([line for line in lines if targets(line)]) >= 12, lines  # the parsing found README's commands
    assert {line: unknown_flags(line, helps) for line in lines if unknown_flags(line, helps)} == {}


def test_a_mistyped_flag_in_a_command_is_caught(helps):
    assert unknown_flags("python -m launch.run --nproc 2 -- --variant nn --epochz 2", helps) == ["--epochz"]
    assert unknown_flags('make compare ARGS="--nprocs 2"', helps) == ["--nprocs"]


# ---- every default in every --help ----------------------------------------------------------------

def _shows_no_default(action: argparse.Action) -> bool:
    return (action.default in (None, False, argparse.SUPPRESS) or action.help == argparse.SUPPRESS
            or not action.option_strings or action.nargs == 0)


@pytest.fixture(scope="module")
def shown_parsers(monkeypatch_module) -> list[argparse.ArgumentParser]:
    """Every parser whose help a CLI printed for --help."""
    shown, original = [], argparse.ArgumentParser.format_help

    def recording(self):
        shown.append(self)
        return original(self)

    monkeypatch_module.setattr(argparse.ArgumentParser, "format_help", recording)
    monkeypatch_module.setenv("COLUMNS", "100")
    for module in CLI_MODULES:
        _help_of(module)
    return shown


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_every_help_shows_every_default(shown_parsers):
    assert len({p.prog for p in shown_parsers}) >= len(CLI_MODULES) - 1  # bench.train and launch.run share one
    hidden = [f"{p.prog} {a.option_strings[-1]}" for p in shown_parsers for a in p._actions
              if not _shows_no_default(a) and "default" not in p._get_formatter()._format_action(a)]
    assert hidden == []


# ---- results pages name their machine from env.json -----------------------------------------------

def test_each_results_page_names_its_machine_as_its_env_json_says():
    from analysis.render.machine_line import machine_line

    results = REPO / "docs" / "results"
    pages = [p for p in sorted(results.glob("*.md")) if (p.with_suffix("") / rundir.ENV).is_file()]
    assert pages, "no results page keeps an env.json"
    for page in pages:
        line = machine_line(rundir.read_json(page.with_suffix("") / rundir.ENV))
        assert f"**Machine.** {line}\n" in page.read_text(), page.name


# ---- one home for the seed question ---------------------------------------------------------------

def test_the_seed_preset_runs_the_seeds_the_recorded_pilot_asks_for():
    """σ per variant from the pilot's CSV, the seeds for the textbook's 1.4 points from analysis.stats.power."""
    import csv
    import statistics

    from analysis.stats.power import seeds_needed
    from launch.matrix import PRESETS

    with open(REPO / "docs" / "results" / "cpu-2core-2026-12-07-seed-pilot" / "seed_pilot.csv") as f:
        rows = list(csv.DictReader(f))
    spread = {v: statistics.stdev(float(r["test_acc"]) for r in rows if r["variant"] == v) for v in ("scratch", "nn")}
    assert len(rows) == 6 and all(r["epochs"] == "10" for r in rows)
    needed = seeds_needed(spread["scratch"], spread["nn"], 0.014)
    assert len(PRESETS["seed"]["seeds"]) == needed == 8
    statistics_page = (REPO / "docs" / "statistics.md").read_text()
    assert "results/cpu-2core-2026-12-07-seed-pilot.md" in statistics_page and f"σ = {spread['nn'] * 100:.2f} points" in statistics_page
