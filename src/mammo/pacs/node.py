"""`mammo listen`: mammo as a DICOM node. A Storage SCP receives mammograms, a scorer sends results back.

Each received instance is checked (a grayscale For Presentation MG image whose pixels decode) and written to the
spool atomically before the C-STORE is answered with success; anything else gets a failure status with the
reason in its Error Comment, and a log line. One thread scores what the spool holds in batches with one loaded
run, puts the SR and heatmap objects (Secondary Capture, Segmentation) of each image in the spool's outbox, marks it done, and sends the
outbox to the destination (C-STORE SCU); what cannot be sent stays there and is retried. SIGTERM (or SIGINT)
stops new stores, lets the associations in flight finish, scores what was acknowledged and exits. On start the
spool's leftovers (acknowledged but not scored, scored but not sent) are taken up first.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import shutil
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mammo.errors import DataError, UserError
from mammo.io.dicom import read_pixels
from mammo.pacs.score import Scorer, read_mammogram_header, save_objects
from mammo.pacs.spool import Spool

log = logging.getLogger("mammo.pacs.node")

REFUSED = 0xC000  # Storage failure "cannot understand": not a mammogram, or pixels that do not decode
BUSY = 0xA700  # Storage failure "out of resources": the node is stopping, or its disk is full
RESULT_CONTEXTS = (
    ("1.2.840.10008.5.1.4.1.1.88.34", ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")),  # Comprehensive 3D SR
    ("1.2.840.10008.5.1.4.1.1.7", ("1.2.840.10008.1.2.4.50",)),  # Secondary Capture, JPEG baseline
    ("1.2.840.10008.5.1.4.1.1.66.4", ("1.2.840.10008.1.2.5",)),  # Segmentation, RLE lossless
)


@dataclass(frozen=True)
class Destination:
    """Where results go: a DICOM node's host, port and AE title."""

    host: str
    port: int
    ae_title: str

    @classmethod
    def parse(cls, text: str) -> Destination:
        """'HOST:PORT:AET' -> Destination; UserError for anything else."""
        parts = text.split(":")
        if len(parts) < 3:
            raise UserError(f"--dest {text!r}: give HOST:PORT:AET, e.g. 127.0.0.1:4242:ORTHANC")
        host, port, aet = ":".join(parts[:-2]), parts[-2], parts[-1]
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or not 0 < len(aet) <= 16:
            raise UserError(f"--dest {text!r}: give HOST:PORT:AET (port 1-65535, AE title 1-16 characters)")
        return cls(host, int(port), aet)

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def _client(calling_aet: str):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(Verification)
    for sop_class, syntaxes in RESULT_CONTEXTS:
        ae.add_requested_context(sop_class, list(syntaxes))
    return ae


def echo(dest: Destination, calling_aet: str) -> str:
    """'' when the destination answers a C-ECHO, else the one-line reason."""
    assoc = _client(calling_aet).associate(dest.host, dest.port, ae_title=dest.ae_title)
    if not assoc.is_established:
        return "no association (host down, wrong port, or our AE title not accepted there)"
    try:
        status = assoc.send_c_echo()
        return "" if status and status.Status == 0 else "C-ECHO failed"
    finally:
        assoc.release()


def send(paths: Sequence[Path], dest: Destination, calling_aet: str) -> tuple[list[Path], str]:
    """C-STORE result files to `dest`: (the files it accepted, '' or the reason the others were not sent)."""
    assoc = _client(calling_aet).associate(dest.host, dest.port, ae_title=dest.ae_title)
    if not assoc.is_established:
        return [], f"{dest} not reachable (no association)"
    sent, reason = [], ""
    try:
        for path in paths:
            status = assoc.send_c_store(path)
            code = int(status.Status) if status and "Status" in status else -1
            if code == 0 or 0xB000 <= code <= 0xBFFF:  # success or warning: stored
                sent.append(path)
            else:
                reason = f"{dest} answered {code:#06x}" if code >= 0 else f"{dest} did not answer"
    finally:
        assoc.release()
    return sent, reason


@dataclass
class Counts:
    """What the node did since it started."""

    received: int = 0
    refused: int = 0
    scored: int = 0
    failed: int = 0
    sent: int = 0

    def line(self) -> str:
        """One summary line."""
        return (
            f"received {self.received}, refused {self.refused}, scored {self.scored}, "
            f"could not score {self.failed}, result objects sent {self.sent}"
        )


@dataclass
class Node:
    """The SCP handler, the scoring thread and the spool they share."""

    scorer: Scorer
    spool: Spool
    dest: Destination
    ae_title: str = "MAMMO"
    batch_size: int = 8
    batch_wait: float = 0.5
    retry_seconds: float = 10.0
    counts: Counts = field(default_factory=Counts)
    halt: threading.Event = field(default_factory=threading.Event)  # set to stop the whole node
    fatal: str = ""
    stopping: threading.Event = field(default_factory=threading.Event)
    received_all: threading.Event = field(default_factory=threading.Event)
    _queue: queue.Queue = field(default_factory=queue.Queue)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _status(self, uid: str, calling: str, code: int, reason: str):
        from pydicom.dataset import Dataset

        with self._lock:
            self.counts.refused += 1
        log.info("%s refused %s from %s: %s", _now(), uid or "(no UID)", calling, reason)
        status = Dataset()
        status.Status = code
        status.ErrorComment = reason[:64]
        return status

    @staticmethod
    def check(path: Path) -> None:
        """DataError unless the file is a grayscale For Presentation mammogram whose pixels decode."""
        read_mammogram_header(path)
        read_pixels(path)

    def on_store(self, event):
        """EVT_C_STORE: spool the instance (atomically, durably) before answering success; refuse the rest."""
        uid = str(event.request.AffectedSOPInstanceUID or "")
        calling = str(event.assoc.requestor.ae_title).strip()
        if self.stopping.is_set():
            return self._status(uid, calling, BUSY, "node is stopping; send it again later")
        try:
            path = self.spool.store(uid, event.encoded_dataset(), check=self.check)
        except (DataError, ValueError) as exc:
            reason = " ".join(str(exc).split()).split(": ", 1)[-1]
            return self._status(uid, calling, REFUSED, reason)
        except OSError as exc:
            return self._status(uid, calling, BUSY, f"spool not writable ({exc.strerror})")
        with self._lock:
            self.counts.received += 1
        self._queue.put((path, calling))
        return 0x0000

    def on_rejected(self, event) -> None:
        """EVT_REJECTED: one log line for an association refused (AE title not allowed, or too many at once)."""
        requestor = event.assoc.requestor
        log.info(
            "%s refused an association from %s at %s: calling AE title not in --allow, or too many associations",
            _now(),
            str(requestor.ae_title).strip(),
            requestor.address,
        )

    def enqueue_pending(self) -> int:
        """Queue what the spool holds from before (acknowledged, not scored); returns how many."""
        pending = self.spool.pending()
        for path in pending:
            self._queue.put((path, "spool"))
        return len(pending)

    def _take(self) -> list[tuple[Path, str]]:
        """Up to batch_size queued instances: waits briefly for the first, then batch_wait for more."""
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.batch_wait
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def work(self) -> None:
        """The scoring thread; an unexpected error (a full disk, a bug) stops the node instead of hiding."""
        try:
            self._work()
        except Exception as exc:
            self.fatal = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            log.error(
                "%s scoring stopped (%s); the spool keeps every unscored image for the next start",
                _now(),
                self.fatal,
            )
            self.halt.set()

    def _work(self) -> None:
        """Batches until stopped and drained; the outbox retried every retry_seconds."""
        last_try = 0.0
        while True:
            batch = self._take()
            if batch:
                self.score(batch)
                last_try = time.monotonic()
            elif self.spool.unsent() and time.monotonic() - last_try > self.retry_seconds:
                self.flush()
                last_try = time.monotonic()
            if self.received_all.is_set() and self._queue.empty():
                if self.spool.unsent():
                    self.flush()
                return

    def score(self, batch: list[tuple[Path, str]]) -> None:
        """Score one batch, put its results in the outbox, mark each done, send, one log line per image."""
        scored = self.scorer.score([path for path, _ in batch])
        lines = {}
        for item, (path, calling) in zip(scored, batch, strict=True):
            uid = path.stem
            if item.score is None:
                self.spool.mark_done(uid, {"error": item.error})
                with self._lock:
                    self.counts.failed += 1
                log.info("%s %s from %s: not scored: %s", _now(), uid, calling, item.error)
                continue
            save_objects(self.scorer.objects(item), self.spool.outbox, uid)
            decision = "malignant" if item.score.malignant else "benign"
            self.spool.mark_done(
                uid, {"probability": item.score.probability, "threshold": item.score.threshold}
            )
            with self._lock:
                self.counts.scored += 1
            lines[uid] = (
                f"{uid} from {calling}: p(cancer) {item.score.probability:.4f} -> {decision} "
                f"(threshold {item.score.threshold:.4f})" + (f", {item.error}" if item.error else "")
            )
        reason = self.flush()
        for uid, line in lines.items():
            pending = any(p.name.startswith(f"{uid}.") for p in self.spool.unsent())
            tail = f"kept in the spool to retry ({reason})" if pending else f"results sent to {self.dest}"
            log.info("%s %s; %s", _now(), line, tail)

    def flush(self) -> str:
        """Send the outbox; remove what the destination accepted; '' or the reason something was kept."""
        paths = self.spool.unsent()
        if not paths:
            return ""
        sent, reason = send(paths, self.dest, self.ae_title)
        for path in sent:
            path.unlink(missing_ok=True)
        with self._lock:
            self.counts.sent += len(sent)
        return reason


def _now() -> str:
    return time.strftime("%H:%M:%S")


@dataclass
class ListenResult:
    """What a node did between start and stop."""

    counts: Counts
    unsent: int
    fatal: str = ""

    @property
    def exit_code(self) -> int:
        """0 after a clean stop, 1 when scoring failed."""
        return 1 if self.fatal else 0

    def summary(self) -> str:
        """One line, plus what is left in the spool and why scoring stopped."""
        left = f"; {self.unsent} result objects still in the spool outbox" if self.unsent else ""
        failed = f"; scoring failed: {self.fatal}" if self.fatal else ""
        return f"stopped: {self.counts.line()}{left}{failed}"


def listen(
    run_dir: str | os.PathLike,
    port: int,
    spool: str | os.PathLike,
    dest: str,
    ae_title: str = "MAMMO",
    allow: Sequence[str] = (),
    host: str = "127.0.0.1",
    batch_size: int = 8,
    device: str = "auto",
    stop: threading.Event | None = None,
    ready: threading.Event | None = None,
    grace: float = 60.0,
) -> ListenResult:
    """Run the node until SIGTERM/SIGINT (or `stop` is set); every check that can fail is done before listening.

    On stop, associations in flight get `grace` seconds to finish (what they did not send was not acknowledged).
    """
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
    from pynetdicom.sop_class import Verification

    if not 0 < port < 65536:
        raise UserError(f"--port {port}: give a port between 1 and 65535")
    if not 0 < len(ae_title) <= 16:
        raise UserError(f"--ae-title {ae_title!r}: an AE title has 1 to 16 characters")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    destination = Destination.parse(dest)
    scorer = Scorer.load(run_dir, device=device)
    if scorer.run.task != "whole":
        raise UserError(
            f"{run_dir} is a {scorer.run.task} run (it scores lesion crops); a node receives whole "
            "mammograms: give it a whole-image run"
        )
    problem = echo(destination, ae_title)
    if problem:
        raise UserError(f"--dest {dest}: {problem}; start that node or fix --dest")
    _check_port(host, port)  # before the spool exists, so a port in use leaves nothing behind
    created = not Path(spool).exists()
    store = Spool(spool).open()
    try:
        stop = stop or threading.Event()
        node = Node(scorer, store, destination, ae_title, batch_size, halt=stop)
        ae = AE(ae_title=ae_title)
        ae.maximum_pdu_size = 0
        ae.add_supported_context(Verification)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        if allow:
            ae.require_calling_aet = list(allow)
        try:
            server = ae.start_server(
                (host, port),
                block=False,
                evt_handlers=[(evt.EVT_C_STORE, node.on_store), (evt.EVT_REJECTED, node.on_rejected)],
            )
        except OSError as exc:  # taken between the check and now: the spool this call made goes too
            store.close()
            if created:
                shutil.rmtree(spool, ignore_errors=True)
            raise _port_error(host, port, exc) from None
        restore = _on_signals(stop)
        worker = threading.Thread(target=node.work, name="mammo-score", daemon=True)
        try:
            leftover = node.enqueue_pending()
            worker.start()
            log.info(
                "%s listening as %s on %s:%d, run %s (%s), results to %s%s",
                _now(),
                ae_title,
                host,
                port,
                scorer.identity.digest,
                scorer.identity.model,
                destination,
                f"; {leftover} instances from the spool first" if leftover else "",
            )
            if ready is not None:
                ready.set()
            stop.wait()
            node.stopping.set()
            log.info("%s stopping: finishing the associations and images in flight", _now())
            deadline = time.monotonic() + grace
            while server.active_associations and time.monotonic() < deadline:
                time.sleep(0.1)
            server.shutdown()
            node.received_all.set()
            worker.join()
        finally:
            restore()
            node.received_all.set()
        return ListenResult(node.counts, len(store.unsent()), node.fatal)
    finally:
        store.close()


def _port_error(host: str, port: int, exc: OSError) -> UserError:
    """The one line for a port the node cannot listen on (or a --host that is not this machine's)."""
    if exc.errno == errno.EADDRNOTAVAIL:
        return UserError(f"--host {host}: not an address of this machine; give e.g. 127.0.0.1 or 0.0.0.0")
    return UserError(
        f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
        "the port is in use or reserved: pick another"
    )


def _check_port(host: str, port: int) -> None:
    """UserError when nothing can listen on host:port now (bound as pynetdicom binds, with SO_REUSEADDR)."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError:
        raise UserError(
            f"--host {host}: not an address of this machine; give e.g. 127.0.0.1 or 0.0.0.0"
        ) from None
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise _port_error(host, port, exc) from None


def _on_signals(stop: threading.Event):
    """SIGTERM and SIGINT set `stop` (main thread only); returns what puts the old handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in old:
        signal.signal(sig, lambda *_: stop.set())

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    return restore
