"""The conformance suite: what every tracker plugin must do, as tests a plugin author runs.

Subclass ``TrackerConformance`` in your own test suite, name the tracker type, say how to
configure it into a fresh folder, and give a small reader that reports what your tracker stored::

    from trackhook.testing.conformance import ReportedRun, TrackerConformance

    class TestJsonLinesConformance(TrackerConformance):
        tracker_type = "jsonl"                       # your entry-point name

        def tracker_config(self, folder):            # a fresh, empty folder per tracker
            return {"path": str(folder / "values.jsonl")}

        def read_run(self, folder, run):             # what your tracker stored for run.run_id
            return ReportedRun(metrics={...}, params={...}, status="SUCCESS", tag=run.tag)

pytest collects every ``test_*`` method of the base class into your class. Each test opens real
runs with ``trackhook.start_run`` (the tracker is found through its entry point, so the wiring is
tested too), tracks the edge cases trackhook promises (steps in and out of order, nested keys, long
keys and values, NaN and infinities, every kind of value, many values, a run continued by its
run_id, a block that raises, fan-out to several trackers at once, a file and an image), and
compares what your reader reports with what was tracked. Parameters are compared after the rules
your tracker declares in ``limits`` (``param_key``, renamed keys, truncation), so a tracker with
limits passes unchanged. A tracker implementing ``trackhook_log_file`` must store the tracked
bytes of the kinds its ``limits.file_kinds`` declares (its reader reports them in
``ReportedRun.files``); files of other kinds, and every file for a tracker without the hook, are
counted ``skipped``.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from trackhook import formats
from trackhook.limits import TRUNCATION_MARK, TrackerLimits
from trackhook.records import ParamValue, RunInfo, param_text
from trackhook.runlog import read_run_log_header
from trackhook.testing import tiny_png

__all__ = ["ReportedRun", "TrackerConformance"]


@dataclass
class ReportedRun:
    """What a tracker stored for one run, as the plugin author's reader reports it.

    ``metrics`` maps each key the tracker stored to ``step -> value``; ``params`` maps each stored
    parameter key (``spam_0`` for a tracker whose ``limits.param_key`` is ``"{key}_{step}"``) to its
    value, as the tracker gives it back: the value itself or its text. ``status`` is ``"SUCCESS"``
    or ``"FAIL"`` in trackhook's words (map your tracker's own, e.g. MLflow's ``FINISHED``), or
    ``None`` when the tracker keeps no status; ``tag`` is the experiment or project the run was
    filed under, or ``None`` to leave it unchecked.
    """

    metrics: dict[str, dict[int, float]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    tag: str | None = None
    files: dict[str, dict[int, bytes]] | None = None
    """For a tracker that implements ``trackhook_log_file``: each stored file's or image's key
    (``FileRecord.key``) mapped to ``step -> the bytes stored``. ``None``: the reader does not
    report files (the file test then fails for a tracker that implements the hook)."""


class TrackerConformance:
    """Base class of a plugin's conformance tests; see the module's documentation."""

    tracker_type: ClassVar[str] = ""
    """The entry-point name of the tracker (the ``type`` users write in configuration)."""

    tracker_class: ClassVar[Any] = None
    """Set to test a class that is not installed under an entry point: it is registered under
    ``tracker_type`` for each test."""

    run_tag: ClassVar[str] = "trackhook-conformance"
    """The tag (experiment, project) of the runs the suite opens."""

    flush_timeout: ClassVar[float] = 30.0
    """Seconds each run's close waits for the tracker (a remote server may need more)."""

    def tracker_config(self, folder: Path) -> dict[str, Any]:
        """The tracker's ``config:`` for a run that stores into ``folder`` (fresh and empty)."""
        del folder
        return {}

    def read_run(self, folder: Path, run: RunInfo) -> ReportedRun | None:
        """What the tracker configured with ``tracker_config(folder)`` stored for ``run``.

        Return ``None`` when it has no such run. Called after the run has closed.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement read_run(folder, run) -> ReportedRun"
        )

    # -- the tests ---------------------------------------------------------------------------

    def test_a_run_opens_and_closes_with_success(self) -> None:
        import trackhook

        run = self._track(lambda: trackhook.track_this(answer=42.0))
        reported = self._read(run)
        self._expect_status(reported, run, "SUCCESS")
        if reported.tag is not None:
            _expect(
                reported.tag == self.run_tag,
                f"the run was filed under {reported.tag!r}, not under its tag {self.run_tag!r}",
            )
        self._expect_metric(reported, "answer", {0: 42.0})

    def test_metrics_arrive_at_their_steps_in_any_order(self) -> None:
        import trackhook

        losses = {step: 1.0 / (step + 1) for step in range(10)}

        def body() -> None:
            for step, loss in losses.items():
                trackhook.track_this(step=step, loss=loss)
            for step in (7, 2, 5):
                trackhook.track_this(step=step, accuracy=step / 10)

        reported = self._read(self._track(body))
        self._expect_metric(reported, "loss", losses)
        self._expect_metric(reported, "accuracy", {7: 0.7, 2: 0.2, 5: 0.5})

    def test_integers_arrive_as_metrics_and_bools_as_parameters(self) -> None:
        import trackhook

        reported = self._read(self._track(lambda: trackhook.track_this(epochs=5, flag=True)))
        self._expect_metric(reported, "epochs", {0: 5})
        _expect("flag" not in reported.metrics, "the bool 'flag' was stored as a metric")
        self._expect_params(reported, [("flag", 0, True)])

    def test_parameters_of_every_kind_arrive_at_their_steps(self) -> None:
        import trackhook

        tracked: list[tuple[str, int, ParamValue]] = [
            ("spam", 0, "hello"),
            ("is_it_true", 0, False),
            ("nothing", 0, None),
            ("sizes", 0, [1, 2, 3]),
            ("spam", 1, "hey"),
        ]

        def body() -> None:
            for key, step, value in tracked:
                trackhook.track_this(step=step, **{key: value})

        self._expect_params(self._read(self._track(body)), tracked)

    def test_nested_dicts_arrive_as_dotted_keys(self) -> None:
        import trackhook

        def body() -> None:
            trackhook.track_this(eggs={"ham": "world", "size": {"grams": 12}})
            trackhook.track_this(step=1, eggs={"ham": "universe"})

        reported = self._read(self._track(body))
        self._expect_metric(reported, "eggs.size.grams", {0: 12})
        self._expect_params(reported, [("eggs.ham", 0, "world"), ("eggs.ham", 1, "universe")])

    def test_long_keys_and_values_are_stored_or_cut_as_the_limits_declare(self) -> None:
        import trackhook

        long_key = "layer_" + "k" * 300
        long_text = "".join(f"{index:05d} " for index in range(2000))

        values: dict[str, Any] = {long_key: 0.5}

        def body() -> None:
            trackhook.track_this(**values)
            trackhook.track_this(description=long_text)

        reported = self._read(self._track(body))
        self._expect_metric(reported, self._limits().storable_key(long_key), {0: 0.5})
        self._expect_params(reported, [("description", 0, long_text)])

    def test_nan_and_infinities_arrive(self) -> None:
        import trackhook

        def body() -> None:
            trackhook.track_this(diverged=math.nan)
            trackhook.track_this(step=1, bound=math.inf)
            trackhook.track_this(step=2, bound=-math.inf)

        reported = self._read(self._track(body))
        self._expect_metric(reported, "diverged", {0: math.nan})
        self._expect_metric(reported, "bound", {1: math.inf, 2: -math.inf})

    def test_many_values_arrive_across_batches(self) -> None:
        import trackhook

        steps = 2500

        params: dict[str, Any] = {f"p{index}": f"v{index}" for index in range(300)}

        def body() -> None:
            for step in range(steps):
                trackhook.track_this(step=step, loss=step / steps)
            trackhook.track_this(**params)

        reported = self._read(self._track(body))
        self._expect_metric(reported, "loss", {step: step / steps for step in range(steps)})
        self._expect_params(reported, [(f"p{index}", 0, f"v{index}") for index in range(300)])

    def test_the_same_run_id_continues_the_run(self) -> None:
        import trackhook

        first = self._track(lambda: trackhook.track_this(step=0, loss=0.9))
        self._track(lambda: trackhook.track_this(step=1, loss=0.5), run_id=first.run_id)
        reported = self._read(first)
        self._expect_metric(reported, "loss", {0: 0.9, 1: 0.5})
        self._expect_status(reported, first, "SUCCESS")

    def test_a_block_that_raises_closes_the_run_with_fail_after_its_values(self) -> None:
        import trackhook

        def body() -> None:
            trackhook.track_this(step=0, loss=0.9)
            raise _Boom("the user's code failed")

        run = self._track(body, raises=_Boom)
        reported = self._read(run)
        self._expect_status(reported, run, "FAIL")
        self._expect_metric(reported, "loss", {0: 0.9})

    def test_fan_out_sends_every_value_to_each_tracker(self) -> None:
        import trackhook
        from trackhook.testing import RecordingTracker, recording

        first, second = self._folder("first"), self._folder("second")
        trackers: list[dict[str, Any]] = [
            {"type": self.tracker_type, "name": "first", "config": self.tracker_config(first)},
            {"type": self.tracker_type, "name": "second", "config": self.tracker_config(second)},
            {"type": "conformance-recorder"},
        ]

        def body() -> None:
            trackhook.track_this(step=1, loss=0.5, optimiser="adam")

        with recording(RecordingTracker(), name="conformance-recorder") as recorder:
            run = self._track(body, trackers=trackers)
        _expect(recorder.metrics("loss") == {1: 0.5}, "the recorder next to it missed values")
        for folder in (first, second):
            reported = self._read(run, folder)
            self._expect_metric(reported, "loss", {1: 0.5})
            self._expect_params(reported, [("optimiser", 1, "adam")])
            self._expect_status(reported, run, "SUCCESS")

    def test_the_client_context_yields_a_client_when_the_tracker_has_one(self) -> None:
        import trackhook

        if not self._implements("trackhook_client_context"):
            pytest.skip("the tracker does not implement trackhook_client_context")
        clients: list[Any] = []

        def body() -> None:
            trackhook.track_this(loss=0.5)
            with trackhook.get_experiment_tracker_context() as client:
                clients.append(client)

        self._track(body)
        _expect(clients != [None], "get_experiment_tracker_context() yielded None")

    def test_files_and_images_arrive_with_their_bytes_or_count_as_skipped(self) -> None:
        import trackhook

        report, image = self._workdir / "report.bin", self._workdir / "sample.png"
        tracked = {"report": bytes(range(256)) * 40, "eval.sample": tiny_png()}
        kind_of = {"report": "file", "eval.sample": "image"}
        report.write_bytes(tracked["report"])
        image.write_bytes(tracked["eval.sample"])

        def body() -> None:
            trackhook.track_this(
                step=2, report=trackhook.File(report), eval={"sample": trackhook.Image(image)}
            )

        run = self._track(body)
        kinds = self._limits().file_kinds if self._implements("trackhook_log_file") else set()
        expected = {key: content for key, content in tracked.items() if kind_of[key] in kinds}
        skipped = self._delivery_of(run)[formats.SKIPPED]
        _expect(
            skipped == len(tracked) - len(expected),
            f"the tracker takes files of the kinds {sorted(kinds)}, yet {skipped} of the "
            f"{len(tracked)} files (a file and an image) were counted as skipped",
        )
        if not expected:
            return
        reported = self._read(run)
        _expect(
            reported.files is not None,
            "the tracker implements trackhook_log_file, but read_run reports no files: set "
            "ReportedRun.files to {key: {step: the bytes stored}}",
        )
        assert reported.files is not None
        for key, content in expected.items():
            stored_key = self._limits().storable_key(key)
            stored = reported.files.get(stored_key, {}).get(2)
            _expect(
                stored is not None,
                f"no file {stored_key!r} was stored at step 2; the stored files are "
                f"{ {name: sorted(steps) for name, steps in reported.files.items()} }",
            )
            _expect(
                hashlib.sha256(stored or b"").digest() == hashlib.sha256(content).digest(),
                f"the file {stored_key!r} was stored with other bytes than tracked "
                f"({len(stored or b'')} bytes stored, {len(content)} tracked)",
            )

    # -- the machinery -----------------------------------------------------------------------

    _workdir: Path

    @pytest.fixture(autouse=True)
    def _conformance_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[None]:
        """A working directory of its own, no trackhook variables from outside."""
        for name in list(os.environ):
            if name.startswith("TRACKHOOK_"):
                monkeypatch.delenv(name)
        monkeypatch.chdir(tmp_path)
        self._workdir = tmp_path
        if not self.tracker_type:
            raise TypeError(f"{type(self).__name__} must set tracker_type (its entry-point name)")
        if self.tracker_class is None:
            yield
            return
        from trackhook.registry import registered

        with registered(self.tracker_type, self.tracker_class):
            yield

    def _folder(self, name: str) -> Path:
        folder = self._workdir / "trackers" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _track(
        self,
        body: Callable[[], None],
        *,
        run_id: str | None = None,
        raises: type[BaseException] | None = None,
        trackers: list[dict[str, Any]] | None = None,
    ) -> RunInfo:
        """Run ``body`` in a run with the tracker; check that the tracker accepted every value."""
        import trackhook

        if trackers is None:
            trackers = [
                {
                    "type": self.tracker_type,
                    "config": self.tracker_config(self._folder("tracker")),
                }
            ]
        config = {
            "experiment_trackers": [{**item, "on_error": "warn"} for item in trackers],
            "run_log_store": str(self._workdir / ".run_log_store"),
            "delivery": {"interval": 0.01, "flush_timeout": self.flush_timeout},
        }
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if raises is None:
                with trackhook.start_run(run_id, self.run_tag, config=config) as run:
                    body()
            else:
                with pytest.raises(raises):
                    with trackhook.start_run(run_id, self.run_tag, config=config) as run:
                        body()
        for warning in caught:  # shown as usual; kept here to explain a tracker that did not load
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
        log = read_run_log_header(run.run_log_path).header
        loaded = {item[formats.TRACKER_NAME] for item in log[formats.TRACKERS]}
        configured = [item.get("name") or item["type"] for item in trackers]
        not_loaded = [name for name in configured if name not in loaded]
        _expect(
            not not_loaded,
            f"tracker {', '.join(map(repr, not_loaded))} did not load: "
            + " / ".join(str(warning.message) for warning in caught),
        )
        for item in log[formats.TRACKERS]:
            delivery = item[formats.TRACKER_DELIVERY]
            _expect(
                not delivery[formats.UNDELIVERED],
                f"tracker {item[formats.TRACKER_NAME]!r} did not accept "
                f"{delivery[formats.UNDELIVERED]} values; "
                f"its last error: {delivery[formats.LAST_ERROR]}",
            )
        return RunInfo(run_id=run.run_id, tag=run.tag)

    def _read(self, run: RunInfo, folder: Path | None = None) -> ReportedRun:
        reported = self.read_run(folder or self._folder("tracker"), run)
        _expect(
            reported is not None,
            f"read_run found no run {run.run_id!r}: the tracker did not store it where "
            "tracker_config told it to",
        )
        assert reported is not None
        return reported

    def _delivery_of(self, run: RunInfo) -> dict[str, Any]:
        """The delivery report of the (only) tracker in ``run``'s run log."""
        path = self._workdir / ".run_log_store" / f"{run.run_id}.json"
        (item,) = read_run_log_header(path).header[formats.TRACKERS]
        delivery: dict[str, Any] = item[formats.TRACKER_DELIVERY]
        return delivery

    def _limits(self) -> TrackerLimits:
        limits = getattr(self._tracker_factory(), "limits", None)
        return limits if isinstance(limits, TrackerLimits) else TrackerLimits()

    def _implements(self, hook: str) -> bool:
        method = getattr(self._tracker_factory(), hook, None)
        return method is not None and hasattr(method, "trackhook_impl")

    def _tracker_factory(self) -> Any:
        from trackhook.registry import load_tracker_class

        return load_tracker_class(self.tracker_type, "the conformance suite").factory

    def _expect_status(self, reported: ReportedRun, run: RunInfo, status: str) -> None:
        if reported.status is None:
            return
        _expect(
            reported.status == status,
            f"run {run.run_id!r} was closed as {reported.status!r}, expected {status!r}",
        )

    def _expect_metric(
        self, reported: ReportedRun, key: str, expected: Mapping[int, float]
    ) -> None:
        stored = reported.metrics.get(key)
        _expect(
            stored is not None,
            f"no metric {key!r} was stored; the stored metrics are {sorted(reported.metrics)}",
        )
        assert stored is not None
        missing = sorted(set(expected) - set(stored))
        _expect(not missing, f"metric {key!r} is missing the steps {missing[:10]}")
        wrong = [
            (step, stored[step], value)
            for step, value in expected.items()
            if not _same_number(stored[step], value)
        ]
        _expect(
            not wrong,
            f"metric {key!r} has wrong values (step, stored, tracked): {wrong[:5]}",
        )

    def _expect_params(
        self, reported: ReportedRun, tracked: list[tuple[str, int, ParamValue]]
    ) -> None:
        limits = self._limits()
        expected: dict[str, ParamValue] = {}
        for key, step, value in tracked:  # a later step under the same stored key replaces
            expected[limits.storable_key(limits.param_key.format(key=key, step=step))] = value
        for key, value in expected.items():
            _expect(
                key in reported.params,
                f"no parameter {key!r} was stored; the stored parameters are "
                f"{sorted(reported.params)[:20]}",
            )
            stored = reported.params[key]
            _expect(
                _same_param(stored, value, limits),
                f"parameter {key!r} was stored as {_short(stored)}, tracked as {_short(value)}",
            )


class _Boom(Exception):
    """The exception the suite's own block raises."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _same_number(stored: Any, tracked: float) -> bool:
    if isinstance(stored, bool) or not isinstance(stored, (int, float)):
        return False
    if math.isnan(tracked):
        return math.isnan(stored)
    if math.isinf(tracked):
        return stored == tracked
    return math.isclose(stored, tracked, rel_tol=1e-6, abs_tol=1e-12)


def _same_param(stored: Any, tracked: ParamValue, limits: TrackerLimits) -> bool:
    if isinstance(stored, bool) or isinstance(tracked, bool):
        return stored is tracked or stored == param_text(tracked)
    if stored == tracked:
        return True
    if not isinstance(stored, str):
        return False
    text = param_text(tracked)
    if stored == text:
        return True
    for mark in (TRUNCATION_MARK, "..."):  # cut to the declared (or a server's) limit
        kept = stored[: -len(mark)]
        if stored.endswith(mark) and kept and text.startswith(kept):
            return limits.max_param_length is None or len(stored) <= limits.max_param_length
    return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"
