"""An independent reader for weir's tests: opens a Delta table with the
Python `deltalake` package (delta-rs' Python binding, querying through its
own DataFusion engine) and prints, as one JSON object, what the Rust side
must agree with: version, schema, partition columns, row count, rows per
partition value, and the distinct (partition, offset) pairs.

usage: read_delta.py TABLE_URI PARTITION_COLUMN OFFSET_COLUMN
"""

import json
import sys

from deltalake import DeltaTable, QueryBuilder


def rows(query, sql):
    """Every row of a query's result, as dicts of Python values."""
    table = query.execute(sql).read_all()
    columns = {name: table.column(name).to_pylist() for name in table.schema.names}
    count = len(next(iter(columns.values()), []))
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def main(uri, partition_column, offset_column):
    table = DeltaTable(uri)
    query = QueryBuilder().register("t", table)
    partitions = table.metadata().partition_columns
    by_partition = {}
    if partitions:
        key = partitions[0]
        for row in rows(query, f'select cast("{key}" as varchar) as v, count(*) as n from t group by 1'):
            by_partition[row["v"]] = row["n"]
    pairs = rows(
        query,
        f'select count(*) as n from (select distinct "{partition_column}", "{offset_column}" from t) d',
    )
    print(
        json.dumps(
            {
                "version": table.version(),
                "schema": [[f.name, str(f.type.type), f.nullable] for f in table.schema().fields],
                "partition_columns": partitions,
                "rows": rows(query, "select count(*) as n from t")[0]["n"],
                "rows_by_partition": by_partition,
                "distinct_offsets": pairs[0]["n"],
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
