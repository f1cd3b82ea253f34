"""The search of a sweep (or of one walk-forward window): an Optuna study kept in a file,
asked for trials and told their outcomes (Optuna's ask-and-tell interface), with the
trials run elsewhere.

Methods:

- ``grid``: every point of the space, each once, in a fixed order. The points are
  enqueued in the study one by one (``Study.enqueue_trial``) rather than drawn by
  Optuna's ``GridSampler``, which is built for ``Study.optimize``: outside it, telling
  the last point calls ``Study.stop`` and raises, and a point re-enqueued after a
  restart would be drawn a second time.
- ``random``: Optuna's ``RandomSampler``, seeded.
- ``tpe``: Optuna's ``TPESampler`` (Bayesian), seeded, with ``constant_liar`` (trials run
  in parallel, so it must not draw again where a running trial already is) and the
  objective's constraints (``constraints_func``), so it learns where trials are
  infeasible.

The study lives in a JournalStorage file (``JournalFileBackend``) under the state
directory. Each finished trial carries its outcome as user attributes, so when a
sweep starts again after a restart its finished trials are read back, not run: only
the trials still missing run (a trial that was running when the daemon stopped is
marked failed, without an outcome, and its point runs again). A point already
computed in the study (random sampling can draw one twice) is told from the first
computation, not computed again.

What is searched is the :class:`~orchestrator.sweep.search.SweepSpec`. Only
:class:`~orchestrator.sweep.jobs.SweepManager` imports this module, when a sweep runs:
importing Optuna costs about 45 ms, which every start of the daemon would pay.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from orchestrator.sweep.search import SweepSpec, TrialRow, params_key
from orchestrator.sweep.space import SearchSpace
from orchestrator.sweep.trial import TrialOutcome

OUTCOME_ATTR = "outcome"
"""The user attribute of a finished trial holding its TrialOutcome (as JSON)."""
CONSTRAINTS_ATTR = "constraints"

TrialRun = Callable[[Mapping[str, Any]], Awaitable[TrialOutcome]]
"""Runs one trial's params somewhere (a Dask cluster, this process) to its outcome."""
RowHandler = Callable[[TrialRow], None]


def study_storage(path: Path) -> JournalStorage:
    """The JournalStorage of a study file (created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


@dataclass
class Search:
    """One search (a sweep, or one window of a walk-forward) over its study."""

    spec: SweepSpec
    space: SearchSpace
    storage: JournalStorage
    study_name: str
    on_row: RowHandler = lambda row: None
    rows: list[TrialRow] = field(default_factory=list)
    computed: int = 0
    """Trials this run computed (not read back from the study)."""

    def __post_init__(self) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._study: optuna.Study | None = None
        self._by_key: dict[str, TrialRow] = {}

    @property
    def total(self) -> int:
        return self.spec.trials_per_search(self.space)

    @property
    def best(self) -> TrialRow | None:
        objective, best = self.spec.objective, None
        for row in self.rows:
            value = row.value
            if row.feasible and value is not None and objective.better(value, _value(best)):
                best = row
        return best

    def resume(self) -> list[TrialRow]:
        """Open (or create) the study and read back its finished trials; blocking
        file I/O: the caller runs it off the event loop."""
        study = self._open()
        interrupted = []
        for trial in study.get_trials(deepcopy=False):
            if OUTCOME_ATTR in trial.user_attrs:
                self._keep(self._row_of(trial))
            elif trial.state is TrialState.RUNNING:
                interrupted.append(trial)
        for trial in interrupted:  # failed without an outcome: never run to its end
            study.tell(trial.number, state=TrialState.FAIL)
            if self.spec.method != "grid" and params_key(trial.params) not in self._by_key:
                study.enqueue_trial(trial.params)
        if self.spec.method == "grid":
            _discard_waiting(study)
        return list(self.rows)

    async def run(self, run_trial: TrialRun, capacity: int) -> list[TrialRow]:
        """Run the missing trials, ``capacity`` at a time; the table, in trial order."""
        await asyncio.to_thread(self.resume)
        points = self._missing_points()
        running: dict[asyncio.Future[TrialOutcome], optuna.trial.Trial] = {}
        try:
            while True:
                while len(running) < capacity and self._more(points, len(running)):
                    trial = await asyncio.to_thread(self._ask, points)
                    known = self._by_key.get(params_key(trial.params))
                    if known is not None:  # drawn again: told from the first computation
                        await asyncio.to_thread(self._tell, trial, known.outcome)
                        continue
                    running[asyncio.ensure_future(run_trial(trial.params))] = trial
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    trial = running.pop(future)
                    self.computed += 1
                    await asyncio.to_thread(self._tell, trial, future.result())
        finally:
            for future in running:
                future.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(*running, return_exceptions=True)
        return sorted(self.rows, key=lambda row: row.number)

    # ------------------------------------------------------------ the study

    def _open(self) -> optuna.Study:
        self._study = optuna.create_study(
            storage=self.storage,
            study_name=self.study_name,
            direction=self.spec.objective.direction,
            sampler=self._sampler(self._drawn()),
            load_if_exists=True,
        )
        return self._study

    def _drawn(self) -> int:
        """Trials the study already has (0 for a new one)."""
        try:
            study_id = self.storage.get_study_id_from_name(self.study_name)
        except KeyError:
            return 0
        return self.storage.get_n_trials(study_id)

    def _sampler(self, drawn: int) -> BaseSampler:
        """The sampler, seeded past the trials already drawn: after a restart it draws new
        points, not the first ones again."""
        seed = self.spec.seed + drawn
        if self.spec.method == "tpe":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return TPESampler(seed=seed, constant_liar=True, constraints_func=_constraints)
        return RandomSampler(seed=seed)

    def _missing_points(self) -> list[dict[str, Any]]:
        """A grid's points not yet computed, in grid order (none for the samplers)."""
        if self.spec.method != "grid":
            return []
        return [p for p in self.space.grid_points() if params_key(p) not in self._by_key]

    def _more(self, points: list[dict[str, Any]], running: int) -> bool:
        if self.spec.method == "grid":
            return bool(points)
        return len(self.rows) + running < self.total

    def _ask(self, points: list[dict[str, Any]]) -> optuna.trial.Trial:
        study = self._study
        assert study is not None
        if self.spec.method == "grid":
            study.enqueue_trial(points.pop(0))
        return study.ask(self.space.distributions)

    def _tell(self, trial: optuna.trial.Trial, outcome: TrialOutcome) -> None:
        study = self._study
        assert study is not None
        objective = self.spec.objective
        value = objective.value(outcome.statistics) if outcome.error is None else None
        trial.set_user_attr(OUTCOME_ATTR, _outcome_json(outcome))
        trial.set_user_attr(CONSTRAINTS_ATTR, objective.constraint_values(outcome.statistics))
        if value is None:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, value)
        row = self._make_row(trial.number, dict(trial.params), outcome)
        self._keep(row)
        self.on_row(row)

    def _row_of(self, trial: FrozenTrial) -> TrialRow:
        outcome = TrialOutcome(**trial.user_attrs[OUTCOME_ATTR])
        return self._make_row(trial.number, dict(trial.params), outcome)

    def _make_row(self, number: int, params: dict[str, Any], outcome: TrialOutcome) -> TrialRow:
        objective = self.spec.objective
        if outcome.error is not None:
            return TrialRow(number, params, outcome, None, ())
        value = objective.value(outcome.statistics)
        return TrialRow(
            number, params, outcome, value, tuple(objective.violations(outcome.statistics))
        )

    def _keep(self, row: TrialRow) -> None:
        self.rows.append(row)
        self._by_key.setdefault(params_key(row.params), row)


def _value(row: TrialRow | None) -> float | None:
    return row.value if row is not None else None


def _discard_waiting(study: optuna.Study) -> None:
    """Fail the grid's points enqueued but never asked (a kill between the two): each ask
    pops the oldest waiting trial, so one left over would shift every later ask by one
    point and leave the grid's last point waiting for ever."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    for _ in waiting:
        study.tell(study.ask(), state=TrialState.FAIL)


def _constraints(trial: FrozenTrial) -> Sequence[float]:
    values = trial.user_attrs.get(CONSTRAINTS_ATTR)
    return list(values) if values else [0.0]


def _outcome_json(outcome: TrialOutcome) -> dict[str, Any]:
    return {
        "statistics": outcome.statistics,
        "total_trades": outcome.total_trades,
        "trades_digest": outcome.trades_digest,
        "error": outcome.error,
    }


__all__ = ["Search", "TrialRun", "study_storage"]
