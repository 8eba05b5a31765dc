"""One source for every clinical number (issue 11): doses, thresholds, windows, intervals and ages live
in `core`'s drug modules (and the shared conventions of core.framework and core.units); everything
else reads them from there.

What counts as a clinical number is taken FROM core, not typed here: every number held by a
constant of the four drug modules (levels, thresholds, windows, ages, profiles, packaging), the
shared conventions (`FRESH_DAYS`, `STABLE_DAYS`, `STABLE_MIN_COUNTS`) and the plausibility bounds.
0, 1 and 2 are left out: they are counts, indices and "the day after" far more often than rules.

Scanned: every .py of flows/ and bot/ (but the frozen database migrations), and every core module
except the ones that define the numbers (the drug modules, core.framework, core.units, core.numbers).
A number equal to a clinical one is flagged where it can only be a rule:
- code: an operand of a comparison (`age >= 18`; not one with `len(...)`, a size), the days of a
  `timedelta(...)` / `days(...)`, the argument of `Decimal(...)` (`Decimal("1.75")`), or a value of a
  mapping keyed by drug name (`{"romiplostim": 7, ...}`, a profile retyped); other uses
  (`rows(buttons, 3)`, an index, a slice, a retry count, hours and minutes) are layout, not rules;
- text: a number in a string or f-string ("below 50", "21 days"; "12 weeks" where 84 days is a clinical
  span, counted in weeks), but not in docstrings or regular
  expressions (a string given to `re`, or one holding `\\d`), nor as part of a date, a time, a power or a
  code ("2026-11-22", "08:00", "10^9", "RX-12").
Examples in prompts (an example count "e.g. 32", an example date 14 days back) are allowed one by
one in `ALLOWED`, each with its reason; an allowance that no longer matches fails too, so the list
cannot go stale.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple

from core import framework, hetrombopag, luspatercept, lusutrombopag, romiplostim, units

ROOT = Path(__file__).resolve().parent.parent
DRUG_MODULES = (romiplostim, hetrombopag, lusutrombopag, luspatercept)
# Where the numbers are defined: not scanned.
DEFINING = {"core/romiplostim.py", "core/hetrombopag.py", "core/lusutrombopag.py", "core/luspatercept.py"}
DEFINING |= {"core/framework.py", "core/units.py", "core/numbers.py"}
HARMLESS = {Decimal(0), Decimal(1), Decimal(2)}
DRUGS = frozenset(module.PROFILE.drug for module in DRUG_MODULES)


def _numbers(value: Any, found: set[Decimal]) -> None:
    """Every number inside a constant: through containers, dataclasses (profiles, ladders, thresholds)
    and NamedTuples; a span of days as its number of days."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float | Decimal):
        found.add(Decimal(str(value)))
    elif isinstance(value, dt.timedelta):
        found.add(Decimal(value.days))
    elif isinstance(value, dict):
        for key, item in value.items():
            _numbers(key, found)
            _numbers(item, found)
    elif isinstance(value, tuple | list | set | frozenset):
        for item in value:
            _numbers(item, found)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            _numbers(getattr(value, field.name), found)


def clinical_numbers() -> set[Decimal]:
    """The numbers of core's drug constants and shared conventions, less the harmless 0, 1 and 2."""
    found: set[Decimal] = set()
    for module in DRUG_MODULES:
        for name, value in vars(module).items():
            if name.lstrip("_").isupper():
                _numbers(value, found)
    for name in ("FRESH_DAYS", "STABLE_DAYS", "STABLE_MIN_COUNTS"):
        _numbers(getattr(framework, name), found)
    for bounds in units.PLAUSIBILITY.values():
        _numbers((bounds.low, bounds.high), found)
    return found - HARMLESS


CLINICAL = clinical_numbers()


class Hit(NamedTuple):
    """A clinical number found outside core's drug modules: where, in which function, and how."""

    path: str
    line: int
    function: str  # the enclosing function or class ('' at module level)
    number: str
    what: str  # 'compare', 'timedelta', 'Decimal' or 'text'
    text: str  # the string it was found in ('' for code)


# Numbers in text, except inside dates (2026-11-22), times (08:00), powers (10^9) and codes (RX-12, oc:t:5),
# and zero-padded identifiers such as a migration's revision '0004' (no clinical number is written so).
_WEEKS = re.compile(r"(?<![\w.])(\d+) weeks?\b")
_NUMBER = re.compile(r"(?<![\w.^/:-])(?!0\d)(\d+(?:\.\d+)?)(?![\w^]|\.\d|[:/-]\d)")


def _as_number(node: ast.AST) -> Decimal | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _as_number(node.operand)
        return -inner if inner is not None else None
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return Decimal(str(node.value))
    if isinstance(node, ast.Call) and _called(node) == "Decimal" and node.args:
        argument = node.args[0]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            try:
                return Decimal(argument.value)
            except InvalidOperation:
                return None
        return _as_number(argument)
    return None


def _called(node: ast.Call) -> str:
    function = node.func
    if isinstance(function, ast.Attribute):
        return function.attr
    return function.id if isinstance(function, ast.Name) else ""


def _not_text(tree: ast.AST) -> set[int]:
    """ids of the strings that are not output: docstrings (documentation) and regular expressions
    (`re.compile(r"\\d{4}")`: a pattern's counts are not rules)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            module = node.func.value
            if isinstance(module, ast.Name) and module.id == "re":
                found.update(id(part) for part in ast.walk(node.args[0]))  # an rf-string's pieces too
        if isinstance(node, ast.Call) and _called(node) == "Decimal":
            found.update(id(argument) for argument in node.args)  # flagged as a Decimal, not again as text
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "\\d" in node.value:
            found.add(id(node))  # a pattern kept in a name (`_ID = r"\\d{1,18}"`)
    return found


def _is_len(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len"


def _scoped(tree: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    """Every node with the name of its innermost enclosing function or class, or at module level the
    name it is assigned to (`DOSE_EXAMPLE = {...}`)."""

    def walk(node: ast.AST, scope: str) -> Iterator[tuple[ast.AST, str]]:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = child.name
            elif isinstance(node, ast.Module) and isinstance(child, ast.Assign | ast.AnnAssign):
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                inner = targets[0].id if isinstance(targets[0], ast.Name) else ""
            yield child, inner
            yield from walk(child, inner)

    yield from walk(tree, "")


def scan(path: Path, root: Path = ROOT) -> list[Hit]:
    """The clinical numbers in one file, in the contexts the module docstring names."""
    relative = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
    not_text = _not_text(tree)
    hits: list[Hit] = []

    def flag(node: ast.AST, scope: str, number: Decimal | None, what: str, text: str = "") -> None:
        if number is not None and number in CLINICAL:
            hits.append(Hit(relative, getattr(node, "lineno", 0), scope, f"{number.normalize():f}", what, text))

    for node, scope in _scoped(tree):
        if isinstance(node, ast.Compare):
            operands = (node.left, *node.comparators)
            if any(_is_len(operand) for operand in operands):
                continue  # the size of a collection or a string, not a clinical value
            for operand in operands:
                flag(operand, scope, _as_number(operand), "compare")
        elif isinstance(node, ast.Call) and _called(node) in ("timedelta", "days"):
            spans = [*node.args[:1], *(k.value for k in node.keywords if k.arg in ("days", "weeks"))]
            for argument in spans:  # hours and minutes are not the rules' spans
                flag(argument, scope, _as_number(argument), "timedelta")
        elif isinstance(node, ast.Call) and _called(node) == "Decimal":
            flag(node, scope, _as_number(node), "Decimal")
        elif isinstance(node, ast.Dict) and any(
            isinstance(key, ast.Constant) and key.value in DRUGS for key in node.keys
        ):
            for item in node.values:  # {"romiplostim": 7, ...}: a drug's number, retyped
                flag(item, scope, _as_number(item), "per drug")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in not_text:
            for match in _NUMBER.finditer(node.value):
                flag(node, scope, Decimal(match.group(1)), "text", node.value)
            for match in _WEEKS.finditer(node.value):  # "every 12 weeks": a span of days, said in weeks
                if Decimal(match.group(1)) * 7 in CLINICAL:
                    hits.append(Hit(relative, node.lineno, scope, match.group(1), "weeks", node.value))
    return hits


def scanned_files(root: Path = ROOT) -> list[Path]:
    """flows/ and bot/ whole; core without the modules that define the numbers."""
    files = [*sorted((root / "flows").rglob("*.py")), *sorted((root / "bot").rglob("*.py"))]
    files = [path for path in files if "migrations" not in path.parts]  # the schema's history, frozen
    files += [path for path in sorted((root / "core").glob("*.py")) if f"core/{path.name}" not in DEFINING]
    return files


class Allowed(NamedTuple):
    """A number that looks clinical but is not a rule: the file, the function, the number, and why."""

    path: str
    function: str
    number: str
    reason: str


_EXAMPLE_DATE = "an example date in a prompt ('e.g. <that day> 2'), not a window of the rules"
_LABEL_RULE = "the patient-label format (a code with a digit, 'bed 4', at most 3 letters in a row), not clinical"
ALLOWED: tuple[Allowed, ...] = (
    Allowed("flows/answers/dose.py", "DOSE_EXAMPLE", "3", "the example typed in a prompt ('e.g. 3'), not a level"),
    Allowed("flows/answers/dose.py", "DOSE_EXAMPLE", "5", "the example typed in a prompt ('e.g. 5'), not a level"),
    Allowed("flows/answers/labs.py", "parse_count", "14", _EXAMPLE_DATE),
    Allowed("flows/answers/luspatercept.py", "transfusions_question", "14", _EXAMPLE_DATE),
    Allowed("flows/answers/luspatercept.py", "parse_transfusion", "14", _EXAMPLE_DATE),
    Allowed("flows/followup.py", "question", "7", _EXAMPLE_DATE),
    Allowed(
        "bot/chart_examples.py",
        "run",
        "3",
        "an example patient's transfusion dated 3 days before a consultation (docs/charts); no rule reads it",
    ),
    Allowed(
        "flows/answers/luspatercept.py",
        "units_problem",
        "20",
        "the chat's typing check of one transfusion (1 to 20 units), typed or corrected; no rule reads it (the core "
        "bounds none)",
    ),
    Allowed(
        "flows/answers/luspatercept.py",
        "parse_baseline",
        "100",
        "the chat's typing check of the baseline burden (0 to 100 units); no rule reads it",
    ),
    Allowed("flows/answers/patient.py", "NO_DIGIT", "4", _LABEL_RULE),
    Allowed("flows/answers/patient.py", "parse_patient", "3", _LABEL_RULE),
    Allowed("flows/answers/patient.py", "parse_patient", "4", _LABEL_RULE),
    Allowed("flows/render.py", "_STEP_HELP", "4", _LABEL_RULE),
    Allowed("flows/steps.py", "STEPS", "4", _LABEL_RULE),
    Allowed("flows/steps.py", "STEPS", "10", "an example of a typed date ('in 10 days'), not a window"),
    Allowed("flows/parsing.py", "LARGEST", "10", "10^7, the largest number a typed answer may hold, not a dose"),
    Allowed("flows/reminders.py", "parse_time", "23", "the last hour of a day on the clock (00:00 to 23:59)"),
    Allowed("bot/cli.py", "CHAT_EPILOG", "3", "help text: 'a typed 3 is the answer 3' explains button numbers"),
    Allowed(
        "core/warnings.py",
        "MESSAGES",
        "3",
        "luspatercept's label: contraception for 3 months after the last dose; quoted only here (its one source)",
    ),
    Allowed(
        "core/warnings.py",
        "MESSAGES",
        "2",
        "romiplostim's label: after stopping, counts weekly for at least 2 weeks; quoted only here (its one source)",
    ),
    Allowed(
        "core/warnings.py",
        "MESSAGES",
        "28",
        "lusutrombopag's label: no breastfeeding for 28 days after the last dose; quoted only here (its one source)",
    ),
)


def _allowed(hit: Hit) -> Allowed | None:
    for entry in ALLOWED:
        if (entry.path, entry.function, entry.number) == (hit.path, hit.function, hit.number):
            return entry
    return None


def all_hits(root: Path = ROOT) -> list[Hit]:
    """Every clinical number outside core's drug modules, allowed or not."""
    return [hit for path in scanned_files(root) for hit in scan(path, root)]


def test_the_clinical_numbers_are_read_from_core():
    # The set is core's: a threshold, a dose level, a window, an age, an interval each show up here.
    for number in ("50", "400", "250", "150", "7.5", "1.75", "21", "18", "120", "84", "10", "4", "14", "11.5"):
        assert Decimal(number) in CLINICAL, number
    assert not CLINICAL & HARMLESS


def test_no_clinical_number_is_retyped_outside_core():
    unexplained = [hit for hit in all_hits() if _allowed(hit) is None]
    shown = "\n".join(
        f"{h.path}:{h.line} in {h.function or '<module>'}: {h.number} ({h.what}) {h.text[:70]!r}" for h in unexplained
    )
    assert unexplained == [], f"clinical numbers retyped outside core (read them from core):\n{shown}"


def test_the_drug_modules_reason_texts_format_their_constants():
    """Inside the drug modules' functions (reason texts, sources) a number is formatted from the
    module's constant, never typed: "below {fmt(LOW)}", not "below 50". Their module-level constants
    are where the numbers are defined, and are not read here."""
    typed = [
        hit
        for module in DRUG_MODULES
        for hit in scan(ROOT / "core" / f"{module.PROFILE.drug}.py")
        if hit.what in ("text", "weeks") and hit.function and not hit.function.lstrip("_").isupper()
    ]
    assert typed == []


def test_every_allowance_is_still_needed():
    hits = all_hits()
    stale = [entry for entry in ALLOWED if not any(_allowed(hit) == entry for hit in hits)]
    assert stale == []
    assert all(entry.reason for entry in ALLOWED)


def test_the_scan_finds_a_retyped_threshold(tmp_path: Path):
    """The scan must be able to fail: each context it reads, on a file written for it."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "x.py").write_text(
        '"""Docstring: 21 days is documentation."""\n'
        "import datetime as dt\n"
        "from decimal import Decimal\n"
        "TABLE = {'romiplostim': 1, 'luspatercept': 21}\n"
        "def f(age, day, count):\n"
        "    rows(count, 3)  # layout: not flagged\n"
        "    if age >= 18:\n"
        "        return day - dt.timedelta(days=21)\n"
        "    return Decimal('1.75'), f'below {count} and 50 x10^9/L on 2026-11-22 at 08:00, RX-12, 12 weeks'\n"
    )
    hits = [(h.line, h.function, h.number, h.what) for h in scan(tmp_path / "flows" / "x.py", tmp_path)]
    assert hits == [
        (4, "TABLE", "21", "per drug"),
        (7, "f", "18", "compare"),
        (8, "f", "21", "timedelta"),
        (9, "f", "1.75", "Decimal"),
        (9, "f", "50", "text"),
        (9, "f", "12", "weeks"),
    ]


# --- the words that now read core's numbers say what they said -------------------------------------


def test_the_questions_quote_cores_windows_and_thresholds():
    """Texts no dialogue reaches, pinned whole: the numbers in them are now formatted from core."""
    from flows.answers import labs
    from flows.answers.common import Confirm
    from flows.replies import Env
    from flows.state import Answers

    env = Env(today=dt.date(2026, 11, 22))
    course = Answers(
        drug="lusutrombopag",
        region="jp",
        indication="cld_procedure",
        status="on",
        dose_since=dt.date(2026, 11, 18),
        lab_date=dt.date(2026, 11, 22),
    )
    assert labs.previous_question(course, env) == (
        "The platelet count from before the course (on or before day 1, 2026-11-18)? The course stops early "
        "when a count from day 5 on is 50 or more and at least 20 above it."
    )
    hb = Answers(
        drug="luspatercept", indication="mds", status="on", dose_since=dt.date(2026, 10, 1), lab_date=env.today
    )
    confirm = labs.parse_previous_date("2026-10-01", hb, env)
    assert isinstance(confirm, Confirm)
    assert confirm.question == (
        "That result is 52 days before the latest (2026-11-22): the rise rule reads only a haemoglobin from the "
        "21 days before the latest (2026-11-01 to 2026-11-21), so it will not count. Use it anyway, or No to "
        "enter another?"
    )
