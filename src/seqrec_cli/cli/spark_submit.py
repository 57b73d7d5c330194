"""Entry point for `spark-submit`: runs `seqrec prepare SPEC [--set ...]` with data.engine=spark inside
the session spark-submit configured (cluster master, executors, memory). Only the driver needs seqrec:

  spark-submit --master yarn --driver-memory 8g \\
    "$(python -c 'import seqrec_cli.cli.spark_submit as m; print(m.__file__)')" \\
    SPEC --set data.path=/shared/log
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from seqrec_cli.cli.app import app

    args = list(sys.argv[1:] if argv is None else argv)
    app(["prepare", *args, "--set", "data.engine=spark"])


if __name__ == "__main__":
    main()
