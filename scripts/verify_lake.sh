#!/usr/bin/env bash
# Verify a lake (python cli.py export --lake) with nothing but psql, awk and sha256sum: for every
# partition file in the manifest (or only those under PARTITION), check its sha256 against the
# manifest, and have PostgreSQL recount that month of the fact (rows and exact money sums)
# against the manifest's figures. One line per file, then a verdict; exit 1 on any mismatch.
# The sha256 ties the bytes to the manifest; psql ties the manifest to the database.
#
# Usage: scripts/verify_lake.sh [LAKE_DIR] [PARTITION]      (default: exports/lake, every file)
#   PARTITION  a path or folder as the manifest lists it, e.g.
#              fact_expenses/year=2025/month=2025-05-01 (one partition on its own)
#   PSQL       the psql command to run (default: the project's ".venv/bin/python cli.py psql")
# scripts/verify.sh DIR hands a lake to this script, so `make verify DIR=exports/lake` works.

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

dir=${1:-exports/lake}
only=${2:-}
only=${only%/}
export PGOPTIONS="-c timezone=UTC -c datestyle=ISO,YMD"

manifest="$dir/manifest.json"
require_manifest "$manifest" "Export the lake first: python cli.py export --lake"
if [[ -f "$dir/.lake-journal.json" ]]; then
    echo "FAIL: a lake export into $dir was interrupted. Run python cli.py export --lake again." >&2
    exit 1
fi

# One line per file: path, sha256, then the manifest's and PostgreSQL's "rows=N col=sum ...".
# psql reads the manifest and builds each recount (\gexec), with the month as a bound literal.
plan=$(run_psql -F "$sep" -v manifest="$(cat "$manifest")" -v only="$only" <<'SQL'
select format(
    'select %L, %L, %L, ''rows='' || count(*)%s from %I.%I%s',
    file ->> 'path',
    file ->> 'sha256',
    'rows=' || (file ->> 'rows') || coalesce((
        select string_agg(' ' || sums.key || '=' || sums.value, '' order by sums.key)
        from json_each_text(file -> 'money_sums') as sums
    ), ''),
    coalesce((
        select string_agg(format(
            ' || '' %s='' || cast(coalesce(sum(%I), 0) as numeric(38, 2))', sums.key, sums.key
        ), '' order by sums.key)
        from json_each_text(file -> 'money_sums') as sums
    ), ''),
    'analytics',
    file ->> 'model',
    case when file -> 'partition' is not null
        then format(' where month = %L::date', file -> 'partition' ->> 'month')
        else ''
    end
)
from json_array_elements((:'manifest')::json -> 'files') as file
where :'only' = ''
    or file ->> 'path' = :'only'
    or file ->> 'path' like replace(replace(:'only', '_', '\_'), '%', '\%') || '/%'
\gexec
SQL
) || { echo "FAIL: psql could not read $manifest or recount the analytics relations" >&2; exit 1; }

while IFS="$sep" read -r path sha256 expected from_database; do
    [[ -z "$path" ]] && continue
    start_file "$path" "$sha256" || continue
    [[ "$from_database" == "$expected" ]] \
        || problems+=("PostgreSQL has $from_database, manifest $expected")
    report_file "$path" "$expected; sha256 matches the manifest, psql the figures"
done <<< "$plan"

verdict "$dir" "$manifest lists no file${only:+ under $only}" \
    "Export again: python cli.py export --lake"
