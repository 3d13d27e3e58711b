"""What a finished run means for the person who started it: a blocked input
(one sentence, exit code 2), failed steps and failed checks of any severity
(error-severity failures exit 1), or success (0)."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from salesintel_assets.assets.ingestion import BLOCKED_INPUT, BREAKER_CHECK

EXIT_OK, EXIT_FAILED, EXIT_BLOCKED = 0, 1, 2


@dataclass
class RunOutcome:
    blocked: str | None = None
    failed_steps: list[tuple[str, str]] = field(default_factory=list)   # (step, first line of the error)
    failed_checks: list[tuple[str, str, str]] = field(default_factory=list)   # (check, severity, description)

    @property
    def exit_code(self) -> int:
        if self.blocked:
            return EXIT_BLOCKED
        if self.failed_steps or any(severity == "error" for _, severity, _ in self.failed_checks):
            return EXIT_FAILED
        return EXIT_OK

    def lines(self) -> list[str]:
        """What to print after the summary (which lists failed warning checks
        itself): failed error checks and failed steps."""
        out = []
        errors = [check for check in self.failed_checks if check[1] == "error"]
        if errors:
            out.append(f"\nFailed checks ({len(errors)}):")
            out += [f"  - {name} ({severity}){': ' + text if text else ''}" for name, severity, text in errors]
        if self.failed_steps:
            out.append(f"\nFailed steps ({len(self.failed_steps)}), run with -v for details:")
            out += [f"  - {step}: {message}" for step, message in self.failed_steps]
        return out


def _metadata_text(value) -> str:
    return str(getattr(value, "value", value))


def _failure_sentence(data, user) -> str:
    """The one sentence of a failed step: the Failure's description, else
    the last line of the error that caused it (e.g. a CRM that refused the pull)."""
    if user is not None and user.description:
        return user.description.strip().splitlines()[0]
    error = getattr(data, "error", None)
    if error is None:
        return "failed"
    while error.cause:
        error = error.cause
    lines = error.message.strip().splitlines()
    return lines[-1].split(": ", 1)[-1] if lines else "failed"


def read_outcome(result: dg.ExecuteInProcessResult | list[dg.ExecuteInProcessResult]) -> RunOutcome:
    """The outcome of a run, or of a run and its follow-ups taken together."""
    outcome = RunOutcome()
    results = result if isinstance(result, list) else [result]
    for event in (event for one in results for event in one.all_events):
        data = event.event_specific_data
        if event.is_step_failure:
            user = getattr(data, "user_failure_data", None)
            metadata = dict(getattr(user, "metadata", None) or {})
            if BLOCKED_INPUT in metadata:
                outcome.blocked = _metadata_text(metadata[BLOCKED_INPUT])
                continue
            outcome.failed_steps.append((event.step_key, _failure_sentence(data, user)))
        elif event.event_type_value == "ASSET_CHECK_EVALUATION" and not data.passed:
            severity = "warning" if data.severity == dg.AssetCheckSeverity.WARN else "error"
            if data.check_name == BREAKER_CHECK and data.description:
                outcome.blocked = outcome.blocked or data.description
            outcome.failed_checks.append((data.check_name, severity, (data.description or "").strip()))
    return outcome
