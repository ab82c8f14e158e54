"""Send labelled rows to the endpoint as live traffic, and keep their labels for the analysis.

Stands in for real users: each row gets a ``request_id``, goes to the endpoint without its label, and
the label is written to ``labels.csv`` (the "ground truth that arrives later", e.g. whether the
customer churned). By default the rows are those the training pipeline did not see (``--skip 300``:
the pipeline trains on the first 300 rows of the bundled data).

Run it while the A/B split is live::

    python src/ab_traffic.py                          # 269 rows to ab-test, 5 a request; labels.csv beside pipeline.yaml
    python src/ab_traffic.py --rows 100 --root .cloudml --labels /tmp/labels.csv

Example:
    >>> frame = load_rows("sklearn://breast_cancer", skip=560)
    >>> len(frame), "target" in frame.columns
    (9, True)
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

BLUEPRINT = Path(__file__).resolve().parent.parent

__all__ = ["load_rows", "main", "send_traffic"]


def load_rows(input_uri: str, skip: int = 0, rows: int = 0) -> Any:
    """The rows to send: the bundled data (or a CSV/Parquet file) without its first ``skip`` rows.

    Example:
        >>> len(load_rows("sklearn://breast_cancer", skip=500, rows=10))
        10
    """
    import pandas as pd

    if input_uri in ("", "sklearn://breast_cancer"):
        if str(Path(__file__).parent) not in sys.path:  # run as a script from anywhere
            sys.path.insert(0, str(Path(__file__).parent))
        from ab_steps import tabular

        frame = tabular().load_default_dataset()
    else:
        path = Path(input_uri) if Path(input_uri).is_absolute() else BLUEPRINT / input_uri
        frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    frame = frame.iloc[skip:]
    return frame.head(rows) if rows > 0 else frame


def send_traffic(adapter: Any, endpoint: str, frame: Any, labels: Path, *, label: str = "target",
                 key: str = "request_id", batch: int = 5, seed: int = 0) -> dict[str, int]:
    """Send ``frame`` (shuffled, without ``label``, with ``key``) in requests of ``batch`` rows; write the labels.

    Returns how many rows each deployment answered.

    Example:
        >>> class Echo:  # a stand-in for the backend: answers every request from "m-v1"
        ...     def invoke(self, endpoint, instances): return {"predictions": [0] * len(instances), "deployment": "m-v1"}
        >>> import pandas as pd, tempfile
        >>> f = pd.DataFrame({"x": [1.0, 2.0, 3.0], "target": [0, 1, 0]})
        >>> out = Path(tempfile.mkdtemp()) / "labels.csv"
        >>> send_traffic(Echo(), "m", f, out, batch=2)
        {'m-v1': 3}
        >>> out.read_text().splitlines()[0]
        'request_id,target'
    """
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    shuffled[key] = [f"r{seed}-{i}" for i in range(len(shuffled))]
    answered: Counter[str] = Counter()
    records = shuffled.drop(columns=[label]).to_dict("records")
    for i in range(0, len(records), batch):
        answer = adapter.invoke(endpoint, records[i:i + batch])
        answered[str(answer.get("deployment"))] += len(records[i:i + batch])
    labels.parent.mkdir(parents=True, exist_ok=True)
    shuffled[[key, label]].to_csv(labels, index=False)
    return dict(answered)


def main(argv: list[str] | None = None) -> int:
    """Command line: send the rows, print the answers per deployment.

    Example:
        >>> import contextlib, io
        >>> with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        ...     main(["--help"])
        >>> "--skip SKIP" in out.getvalue()
        True
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--endpoint", default="ab-test")
    p.add_argument("--input-uri", default="sklearn://breast_cancer")
    p.add_argument("--skip", type=int, default=300, help="leave out the first rows (the training rows)")
    p.add_argument("--rows", type=int, default=0, help="send at most this many rows (0: all)")
    p.add_argument("--batch", type=int, default=5, help="rows per request")
    p.add_argument("--label", default="target")
    p.add_argument("--labels", default=str(BLUEPRINT / "labels.csv"), help="where the labels go")
    p.add_argument("--root", default=None, help="local backend state folder (default: the configured one)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import cloudml

    adapter = cloudml.get_adapter("local", **({"root": args.root} if args.root else {}))
    frame = load_rows(args.input_uri, args.skip, args.rows)
    answered = send_traffic(adapter, args.endpoint, frame, Path(args.labels), label=args.label,
                            batch=args.batch, seed=args.seed)
    print(f"sent {len(frame)} rows to {args.endpoint}: " + ", ".join(f"{k} {v}" for k, v in sorted(answered.items())))
    print(f"labels: {args.labels}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
