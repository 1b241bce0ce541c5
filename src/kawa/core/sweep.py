"""Sweep expansion: a command's ``span:`` arguments to the cartesian product of values.

The rules are pure functions of the arguments. They live in :mod:`kawa.standalone.sweep`,
the single standard-library file the runner also puts into every task (so ``kawa sweep``
works where kawa is not installed); this module is their name in the domain layer, used
by the host to fan a sweep out as one batch.
"""

from __future__ import annotations

from kawa.standalone.sweep import DEFAULT_LIMIT as DEFAULT_LIMIT
from kawa.standalone.sweep import Combination as Combination
from kawa.standalone.sweep import Span as Span
from kawa.standalone.sweep import Sweep as Sweep
from kawa.standalone.sweep import SweepError as SweepError
from kawa.standalone.sweep import expand as expand
from kawa.standalone.sweep import parse as parse
