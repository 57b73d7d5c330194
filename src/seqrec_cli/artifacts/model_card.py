"""The README.md every export carries: what the model was trained on, how well it did, how to use it."""

from __future__ import annotations

import json

HEADLINE = ("HR@10", "NDCG@10", "MRR@10", "HR@20", "NDCG@20")


def _metrics_section(evals: dict) -> list[str]:
    if not evals:
        return [
            "No evaluation was run before this export (run `seqrec evaluate SPEC --split test` and",
            "export again to get metrics here).",
        ]
    lines = []
    for split, report in evals.items():
        ci = report.get("ci") or {}
        protocol = report.get("protocol") or {}
        lines += [
            f"### {split} split",
            "",
            f"Protocol: {protocol.get('split', '?')}, {protocol.get('ranking', '?')}, "
            f"filter_seen={report.get('filter_seen')}, ties {protocol.get('ties', '?')}; "
            f"{report.get('users', '?')} users, seed {report.get('seed', '?')}.",
            "",
            "| metric | value | 95% CI |",
            "|---|---|---|",
        ]
        for name in HEADLINE:
            if name in report.get("metrics", {}):
                band = ci.get(name)
                text = f"[{band['low']:.4f}, {band['high']:.4f}]" if band else "not computed"
                lines.append(f"| {name} | {report['metrics'][name]:.4f} | {text} |")
        lines.append("")
    return lines


def model_card(
    name: str,
    fingerprint: dict,
    spec: dict,
    evals: dict,
    num_items: int,
    unrankable: int,
    formats: list[str],
    ann: dict | None,
) -> str:
    """Markdown text; every figure comes from the run's own files (no placeholders)."""
    model, train = spec["model"], spec["train"]
    lines = [
        f"# Model card: {name}",
        "",
        f"A `{model['encoder']}` sequential recommender ({model['hidden']} wide, {model['layers']} layers, "
        f"history length {model['max_len']}, items: {model['items']}) exported by seqrec.",
        "",
        "## Data",
        "",
        f"- dataset fingerprint: {fingerprint.get('hash')}",
        f"- users {fingerprint.get('users')}, items {fingerprint.get('items')}, "
        f"interactions {fingerprint.get('interactions')}",
        f"- catalogue served: {num_items} items ({unrankable} held out of training, never recommended)",
        f"- data section of the spec: `{json.dumps(spec['data'], sort_keys=True)}`",
        "",
        "## Metrics",
        "",
        *_metrics_section(evals),
        "## Training",
        "",
        f"- loss {train.get('loss')}, method {train.get('method')}, seed {train.get('seed')}, "
        f"lr {train.get('lr')}, batch {train.get('batch_size')}",
        f"- model section: `{json.dumps(model, sort_keys=True)}`",
        f"- train section: `{json.dumps(train, sort_keys=True)}`",
        "",
        "## Serving",
        "",
        f"- formats in this folder: {', '.join(formats)}",
        (
            "- approximate top-k: faiss IVF, nprobe {nprobe}, recall@10 {recall_at_10:.4f} against exact "
            "top-k "
            "on sampled user histories".format(**ann)
            if ann
            else "- top-k: exact (blocked over the catalogue)"
        ),
        "- `seqrec serve THIS_FOLDER` answers HTTP requests; `seqrec recommend` answers one history.",
        "",
        "## Intended use",
        "",
        "Ranking candidate items for a user from the raw item ids of their recent history, on the catalogue",
        "above. Scores are relative within one request, not probabilities.",
        "",
        "## Limitations",
        "",
        "- Items not in the catalogue are ignored (the service reports them back); new items need a",
        "  new model.",
        f"- Only the last {model['max_len']} items of a history are used.",
        "- Offline metrics come from a leave-one-out or temporal split of logged data; they do not measure",
        "  online effects (feedback loops, popularity bias, position bias).",
        "- The model learns from logged behaviour and inherits its biases; review recommendations for",
        "  sensitive catalogues before use.",
    ]
    return "\n".join(lines) + "\n"
