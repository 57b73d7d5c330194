"""`seqrec serve` end to end: a tiny export trained in-test, the real server in a subprocess on a free
127.0.0.1 port, and plain HTTP. Covers recommend, live histories, reload (good, corrupt, incompatible,
under load), every bad-input case, kill -9 durability, the token, and torch/onnx agreement."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import threading
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")

from seqrec_cli.artifacts.recommender import Recommender  # noqa: E402
from seqrec_cli.serve.engine import Query, ServedModel  # noqa: E402
from serve_fixtures import ITEMS, Server, build_export, ok, raw_item, start_server  # noqa: E402

H = [raw_item(i) for i in (3, 4, 5)]


def same_items(a: list[dict], b: list[dict]) -> None:
    """Same ids in the same order, scores within 1e-4."""
    assert [x["id"] for x in a] == [x["id"] for x in b]
    assert all(abs(x["score"] - y["score"]) < 1e-4 for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return build_export(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def server(export: Path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    s = start_server(
        export,
        folder / "h.sqlite3",
        folder / "log.txt",
        "--max-history",
        "50",
        "--max-batch",
        "16",
        "--max-wait-ms",
        "20",
    )
    yield s
    s.stop()


def test_export_has_model_card_onnx_and_manifest_entries(export: Path) -> None:
    manifest = json.loads((export / "manifest.json").read_text())
    for name in ("README.md", "model.onnx", "item_table.safetensors", "popularity.json"):
        assert name in manifest["files"], name
    card = (export / "README.md").read_text()
    fingerprint = manifest["dataset_fingerprint"]
    assert fingerprint["hash"] in card and "## Intended use" in card and "## Limitations" in card
    test = json.loads((export / "metrics.json").read_text())["test"]
    band = test["ci"]["NDCG@10"]
    assert f"| NDCG@10 | {test['metrics']['NDCG@10']:.4f} | [{band['low']:.4f}, {band['high']:.4f}] |" in card
    assert "leave_one_out" in card and manifest["formats"] == ["safetensors", "onnx"]


def test_served_model_matches_recommender_on_both_backends(export: Path) -> None:
    rec = Recommender.load(export)
    histories = [H, [raw_item(1)], [raw_item(i) for i in range(12)]]
    want = rec.recommend(histories, k=5)
    for backend in ("torch", "onnx"):
        model = ServedModel(export, backend, threads=1)
        got = model.answer([Query(h, None, 5, True, []) for h in histories])
        for g, w in zip(got, want, strict=True):
            assert [i for i, _ in g.items] == [i for i, _ in w]
            assert max(abs(a[1] - b[1]) for a, b in zip(g.items, w, strict=True)) < 1e-4


def test_recommend_reports_unknown_ids_and_excludes_history(server: Server) -> None:
    status, body = server.call(
        "POST", "/recommend", {"history": [*H, "nope", 12345], "k": 4, "exclude": [raw_item(9)]}
    )
    assert status == 200, body
    ids = [item["id"] for item in body["items"]]
    assert len(ids) == 4 and not set(ids) & {*H, raw_item(9)}
    assert (
        body["unknown_items"] == ["nope", "12345"] and body["fallback"] is None and body["history_used"] == 3
    )
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    status, keep = server.call("POST", "/recommend", {"history": H, "k": ITEMS, "exclude_history": False})
    assert status == 200 and len(keep["items"]) == ITEMS


def test_batch_form_equals_single_requests(server: Server) -> None:
    requests = [{"history": H, "k": 3}, {"history": [raw_item(7)], "k": 2}, {"history": [], "k": 2}]
    status, body = server.call("POST", "/recommend/batch", {"requests": requests})
    assert status == 200, body
    for one, got in zip(requests, body["results"], strict=True):
        single = server.call("POST", "/recommend", one)[1]
        same_items(single["items"], got["items"])  # the batch pads differently: float noise only
        assert {**single, "items": None} == {**got, "items": None}
    assert body["results"][2]["fallback"] == "popularity"


def test_an_event_changes_the_next_answer_and_history_is_bounded(server: Server) -> None:
    status, cold = server.call("GET", "/users/alice/recommendations?k=5")
    assert status == 200 and cold["fallback"] == "popularity" and cold["user_known"] is False
    status, ack = server.call("POST", "/users/alice/events", {"item": raw_item(2), "time": 100.0})
    assert status == 200 and ack == {"user": "alice", "stored": 1, "unknown_items": []}
    warm = server.call("GET", "/users/alice/recommendations?k=5")[1]
    assert warm["fallback"] is None and warm["user_known"] and warm["history_used"] == 1
    assert warm["items"] != cold["items"]
    server.call("POST", "/users/alice/events", {"events": [{"item": raw_item(10)}, {"item": "brand-new"}]})
    after = server.call("GET", "/users/alice/recommendations?k=5")[1]
    assert after["items"] != warm["items"] and after["unknown_items"] == ["brand-new"]
    same_items(
        after["items"],
        server.call("POST", "/recommend", {"history": [raw_item(2), raw_item(10)], "k": 5})[1]["items"],
    )
    status, ack = server.call(
        "POST", "/users/alice/events", {"events": [{"item": raw_item(i)} for i in range(12)]}
    )
    assert ack["stored"] == 8  # the model's max_len


BAD = [
    ("malformed JSON", "POST", "/recommend", b'{"history": [1,', 422),
    ("not an object", "POST", "/recommend", b"[1, 2]", 422),
    ("history not a list", "POST", "/recommend", {"history": "9003", "k": 3}, 422),
    ("k wrong type", "POST", "/recommend", {"history": H, "k": "ten"}, 422),
    ("item id an object", "POST", "/recommend", {"history": [{"id": 1}], "k": 3}, 422),
    ("item id a float", "POST", "/recommend", {"history": [1.5], "k": 3}, 422),
    ("k zero", "POST", "/recommend", {"history": H, "k": 0}, 422),
    ("k negative", "POST", "/recommend", {"history": H, "k": -3}, 422),
    ("k beyond catalogue", "POST", "/recommend", {"history": H, "k": ITEMS + 1}, 422),
    ("history too long", "POST", "/recommend", {"history": [raw_item(1)] * 51, "k": 3}, 422),
    ("times mismatch", "POST", "/recommend", {"history": H, "times": [1.0], "k": 3}, 422),
    ("unknown field", "POST", "/recommend", {"history": H, "kk": 3}, 422),
    ("empty batch", "POST", "/recommend/batch", {"requests": []}, 422),
    ("bad entry in batch", "POST", "/recommend/batch", {"requests": [{"history": H, "k": 999}]}, 422),
    ("no events", "POST", "/users/u/events", {"events": []}, 422),
    ("event without item", "POST", "/users/u/events", {"time": 3}, 422),
    ("user k zero", "GET", "/users/u/recommendations?k=0", None, 422),
    ("user k text", "GET", "/users/u/recommendations?k=abc", None, 422),
    ("user k beyond catalogue", "GET", "/users/u/recommendations?k=1000", None, 422),
    ("user id too long", "GET", "/users/" + "u" * 300 + "/recommendations", None, 422),
    ("no such route", "GET", "/nothing", None, 404),
    ("wrong method", "GET", "/recommend", None, 405),
]


@pytest.mark.parametrize(("case", "method", "path", "body", "status"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_with_a_reason(server: Server, case, method, path, body, status) -> None:
    raw = body if isinstance(body, bytes) else None
    got, answer = server.call(method, path, None if raw else body, raw=raw)
    assert got == status, (case, answer)
    assert answer.get("detail"), answer


def test_unknown_only_and_empty_histories_fall_back_to_popularity(server: Server) -> None:
    for history in ([], ["nope", "gone"]):
        status, body = server.call(
            "POST", "/recommend", {"history": history, "k": 3, "exclude": [raw_item(0)]}
        )
        assert status == 200 and body["fallback"] == "popularity" and len(body["items"]) == 3
        assert body["unknown_items"] == history and raw_item(0) not in [i["id"] for i in body["items"]]


def test_reason_texts_name_the_limit(server: Server) -> None:
    assert "exceeds the 20 items" in server.call("POST", "/recommend", {"history": H, "k": 21})[1]["detail"]
    assert "at most 50" in server.call("POST", "/recommend", {"history": H * 20, "k": 3})[1]["detail"]


def test_concurrent_requests_share_forward_passes(server: Server) -> None:
    before = _metric(server, "seqrec_batch_size_count")
    answers: list[tuple[int, dict]] = []
    threads = [
        threading.Thread(
            target=lambda n=n: answers.append(
                server.call("POST", "/recommend", {"history": [raw_item(n % ITEMS)], "k": 3})
            )
        )
        for n in range(24)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s for s, _ in answers] == [200] * 24
    assert _metric(server, "seqrec_batch_size_count") - before < 24  # some requests shared a pass


def _metric(server: Server, name: str, labels: str = "") -> float:
    text = server.call("GET", "/metrics")[1]["text"]
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_model_and_health(server: Server, export: Path) -> None:
    assert server.call("GET", "/healthz") == (200, {"status": "ok"})
    text = server.call("GET", "/metrics")[1]["text"]
    assert 'seqrec_requests_total{method="POST",route="/recommend",status="200"}' in text
    assert 'seqrec_requests_total{method="POST",route="/recommend",status="422"}' in text
    assert "seqrec_request_latency_seconds_bucket" in text and "seqrec_batch_size_bucket" in text
    assert not re.search(r'status="5\d\d"', text)  # nothing above ever gave a 5xx
    status, card = server.call("GET", "/model")
    assert status == 200 and card["card"] == (export / "README.md").read_text()
    assert card["items"] == ITEMS and card["backend"] == "torch" and card["config"]["max_len"] == 8


def test_reload_swaps_good_exports_and_refuses_broken_ones(
    server: Server, export: Path, tmp_path: Path
) -> None:
    old = server.call("GET", "/model")[1]["model"]
    spec = export.parent.parent.parent / "serve.yaml"
    fresh = tmp_path / "fresh"
    ok("export", spec, "--set", f"export.dir={fresh}")  # same weights, a new folder: a new fingerprint
    corrupt = tmp_path / "corrupt"
    shutil.copytree(export, corrupt)
    weights = bytearray((corrupt / "model.safetensors").read_bytes())
    weights[-5] ^= 0xFF
    (corrupt / "model.safetensors").write_bytes(bytes(weights))
    future = tmp_path / "future"
    shutil.copytree(export, future)
    manifest = json.loads((future / "manifest.json").read_text())
    (future / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    no_onnx_backend = tmp_path / "missing"
    for bad, reason in (
        (corrupt, "sha256 mismatch"),
        (future, "unsupported export format"),
        (no_onnx_backend, "manifest.json missing"),
    ):
        status, body = server.call("POST", "/admin/reload", {"path": str(bad)})
        assert status == 422 and reason in body["detail"] and body["serving"] == old, body
        assert server.call("POST", "/recommend", {"history": H, "k": 3})[1]["model"] == old
    # a good reload while requests are in flight: none of them fails
    stop, statuses = threading.Event(), []

    def load() -> None:
        while not stop.is_set():
            statuses.append(server.call("POST", "/recommend", {"history": H, "k": 3})[0])

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    status, body = server.call("POST", "/admin/reload", {"path": str(fresh)})
    stop.set()
    for w in workers:
        w.join()
    assert status == 200 and body["previous"] == old and body["model"]["fingerprint"] != old["fingerprint"]
    assert statuses and set(statuses) == {200}
    assert server.call("POST", "/recommend", {"history": H, "k": 3})[1]["model"] == body["model"]
    assert _metric(server, "seqrec_reloads_total", 'result="refused"') == 3


def test_kill9_keeps_acknowledged_events_and_token_guards_reload(export: Path, tmp_path: Path) -> None:
    store = tmp_path / "h.sqlite3"
    first = start_server(export, store, tmp_path / "log1.txt", env={"SEQREC_ADMIN_TOKEN": "s3cret"})
    try:
        assert (
            first.call("POST", "/admin/reload", {})[0] == 403
        )  # a token is set: localhost alone is not enough
        assert first.call("POST", "/admin/reload", {}, headers={"Authorization": "Bearer wrong"})[0] == 403
        assert first.call("POST", "/admin/reload", {}, headers={"Authorization": "Bearer s3cret"})[0] == 200
        status, ack = first.call("POST", "/users/bob/events", {"item": raw_item(6), "time": 5.0})
        assert status == 200 and ack["stored"] == 1
    finally:
        first.stop(signal.SIGKILL)  # no shutdown hook runs
    with sqlite3.connect(store) as db:  # WAL: the acknowledged row is readable right after the kill
        assert db.execute("SELECT user, item, time FROM events").fetchall() == [("bob", raw_item(6), 5.0)]
    second = start_server(export, store, tmp_path / "log2.txt")
    try:
        body = second.call("GET", "/users/bob/recommendations?k=3")[1]
        assert body["user_known"] and body["history_used"] == 1 and body["fallback"] is None
    finally:
        second.stop()


def test_onnx_backend_server_agrees_with_torch(server: Server, export: Path, tmp_path: Path) -> None:
    onnx = start_server(export, tmp_path / "h.sqlite3", tmp_path / "log.txt", "--backend", "onnx")
    try:
        assert onnx.call("GET", "/model")[1]["backend"] == "onnx"
        for history in (H, [raw_item(0)], [raw_item(i) for i in range(15)]):
            a = server.call("POST", "/recommend", {"history": history, "k": 5})[1]["items"]
            b = onnx.call("POST", "/recommend", {"history": history, "k": 5})[1]["items"]
            same_items(a, b)
    finally:
        onnx.stop()


def test_serve_refuses_a_bad_export_with_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from seqrec_cli.cli.app import app

    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--store", str(tmp_path / "h.sqlite3")])
    assert result.exit_code == 2 and "manifest.json missing" in result.output
    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--backend", "tpu"])
    assert result.exit_code == 2 and "--backend" in result.output
