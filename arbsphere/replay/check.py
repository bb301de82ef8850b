"""``arbsphere replay RUN_DIR``: the coordinator re-executed from a result set's journal.

``--verify`` re-runs the coordinator from the journal (verified against the manifest's chain
head as it is read) and compares every PlanDelta byte for byte and the final state digest:
exit 0 when identical, 1 naming the first divergent record (index, field, recorded vs replayed
value) or the first corrupt journal byte (segment, offset, sequence).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from arbsphere.errors import ResultSetError
from arbsphere.journal import JournalHead
from arbsphere.replay.engine import ReplayResult, journal_records, replay_records


def journal_of(run_dir: Path) -> tuple[Path, JournalHead | None, dict[str, Any]]:
    """The journal directory of a result set, its recorded head, and the manifest."""
    manifest_path = run_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise ResultSetError(f"{manifest_path}: no manifest (not a result set?)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultSetError(f"{manifest_path}: cannot read: {exc}") from exc
    entry = manifest.get("journal")
    if not isinstance(entry, dict):
        raise ResultSetError(f"{manifest_path}: key 'journal': the run recorded no journal")
    directory = run_dir / str(entry.get("dir", "journal"))
    if not directory.is_dir():
        raise ResultSetError(f"{directory}: journal directory missing")
    head = entry.get("head")
    return directory, JournalHead.from_dict(head) if isinstance(head, dict) else None, manifest


def verify_run(run_dir: Path) -> tuple[ReplayResult, float]:
    """Replay ``run_dir``'s journal against its recording; (result, seconds taken)."""
    directory, head, _ = journal_of(run_dir)
    t0 = time.perf_counter()
    result = replay_records(journal_records(directory, head))
    if head is None:
        result.notes.append("the manifest has no journal head: the chain was not checked")
    return result, time.perf_counter() - t0
