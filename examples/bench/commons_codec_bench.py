#!/usr/bin/env python3
"""The reference side of `eddy-bench cratedb`: rows/s that commons-codec's DynamoDBCDCTranslator
(cratedb-toolkit's DynamoDB CDC translator) translates and serializes, on the same JSONL input.

    pip install 'commons-codec==0.0.24'
    python3 examples/bench/commons_codec_bench.py --input records.jsonl --rounds 3
"""
import argparse
import json
import time

from commons_codec.transform.dynamodb import DynamoDBCDCTranslator


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    records = [json.loads(line) for line in open(a.input) if line.strip()]
    translator = DynamoDBCDCTranslator(table_name="foo")
    started = time.perf_counter()
    size = 0
    for _ in range(a.rounds):
        ops = [translator.to_sql(r) for r in records]
        size = len(json.dumps([op.parameters for op in ops], default=str))
    secs = time.perf_counter() - started
    rows = len(records) * a.rounds
    print(f"commons-codec: {rows} records translated and serialized in {secs:.3f}s on one core: "
          f"{rows / secs:.0f} rows/s ({size} bytes of parameters per round)")


if __name__ == "__main__":
    main()
