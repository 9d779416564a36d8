#!/usr/bin/env bash
# Verify an export with nothing but psql, awk, sha256sum, sort and diff: for every CSV file in
# the manifest, recount the records and the money sums from the file itself (awk, exact cents),
# recompute them in PostgreSQL, compare both with manifest.json, check the file's sha256, and
# diff its rows against what psql's own \copy of the same columns gives now. Parquet files are
# checked against their sha256. One line per file, then a verdict; exit 1 on any mismatch.
#
# Usage: scripts/verify.sh [EXPORT_DIR]          (default: exports)
#   PSQL  the psql command to run (default: the project's ".venv/bin/python cli.py psql", which
#         finds the tracker's database the way every command does); arguments are appended.

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

dir=${1:-exports}
# The exporter's session settings, so psql prints dates and numbers the same way.
export PGOPTIONS="-c timezone=UTC -c datestyle=ISO,YMD -c intervalstyle=postgres -c extra_float_digits=1"

manifest="$dir/manifest.json"
require_manifest "$manifest" "Export first: python cli.py export"

# A lake (export --lake) is checked partition by partition by its own script.
if grep -q '"generator": "smart-spending-tracker export --lake"' "$manifest"; then
    exec bash "$project/scripts/verify_lake.sh" "$@"
fi

# psql reads the manifest (JSON) and plans one line per file:
# path, model, format, rows, sha256, "col=sum col=sum" from the manifest, and the select list
# that renders the columns as the exporter does (booleans as text, ISO 8601 timestamps).
plan=$(run_psql -F "$sep" -v manifest="$(cat "$manifest")" <<'SQL'
select
    file ->> 'path',
    file ->> 'model',
    file ->> 'format',
    file ->> 'rows',
    file ->> 'sha256',
    coalesce((
        select string_agg(sums.key || '=' || sums.value, ' ')
        from json_each_text(file -> 'money_sums') as sums
    ), ''),
    coalesce((
        select string_agg(
            case columns.spec ->> 'type'
                when 'boolean' then format('%I::text as %I', columns.spec ->> 'name', columns.spec ->> 'name')
                when 'timestamp with time zone' then format(
                    $$to_char(%I, 'YYYY-MM-DD"T"HH24:MI:SS.USTZH:TZM') as %I$$,
                    columns.spec ->> 'name', columns.spec ->> 'name')
                when 'timestamp without time zone' then format(
                    $$to_char(%I, 'YYYY-MM-DD"T"HH24:MI:SS.US') as %I$$,
                    columns.spec ->> 'name', columns.spec ->> 'name')
                else format('%I', columns.spec ->> 'name')
            end,
            ', ' order by columns.position
        )
        from json_array_elements(file -> 'columns') with ordinality as columns (spec, position)
    ), '*')
from json_array_elements((:'manifest')::json -> 'files') as file
SQL
) || { echo "FAIL: psql could not read $manifest" >&2; exit 1; }

# PostgreSQL's own count and money sums per CSV file, in one session (\gexec runs each query).
database_stats=$(run_psql -F "$sep" -v manifest="$(cat "$manifest")" <<'SQL'
select format(
    'select %L, count(*)%s from %I.%I',
    file ->> 'path',
    coalesce((
        select string_agg(format(', cast(coalesce(sum(%I), 0) as numeric(38, 2))', sums.key), '')
        from json_each_text(file -> 'money_sums') as sums
    ), ''),
    'analytics',
    file ->> 'model'
)
from json_array_elements((:'manifest')::json -> 'files') as file
where file ->> 'format' = 'csv'
\gexec
SQL
) || { echo "FAIL: psql could not recount the analytics relations" >&2; exit 1; }

# Records and exact money sums of one CSV file. A record may span lines (quoted newlines):
# lines are joined until the number of quotes is even. Sums are kept in integer cents split
# into two doubles (below and above 10^12), so they stay exact at any size.
count_csv() {
    awk -v money="$1" '
    function add_cents(column, text,    negative, point, whole, cents, low, high) {
        if (text == "") return
        negative = substr(text, 1, 1) == "-"
        if (negative) text = substr(text, 2)
        point = index(text, ".")
        whole = point ? substr(text, 1, point - 1) : text
        cents = point ? substr(text, point + 1) : ""
        if (length(cents) > 2 || whole !~ /^[0-9]+$/ || (cents != "" && cents !~ /^[0-9]+$/)) {
            if (++bad_count <= 3) bad = bad " " column "=" text
            return
        }
        cents = whole substr(cents "00", 1, 2)
        low = length(cents) > 12 ? substr(cents, length(cents) - 11) : cents
        high = length(cents) > 12 ? substr(cents, 1, length(cents) - 12) : 0
        if (negative) { nlow[column] += low; nhigh[column] += high }
        else { plow[column] += low; phigh[column] += high }
    }
    function total(column,    ph, pl, nh, nl, high, low, sign, text) {
        ph = phigh[column] + int(plow[column] / 1e12); pl = plow[column] % 1e12
        nh = nhigh[column] + int(nlow[column] / 1e12); nl = nlow[column] % 1e12
        sign = ""
        if (nh > ph || (nh == ph && nl > pl)) { sign = "-"; high = nh - ph; low = nl - pl }
        else { high = ph - nh; low = pl - nl }
        if (low < 0) { low += 1e12; high -= 1 }
        text = high > 0 ? sprintf("%.0f%012.0f", high, low) : sprintf("%.0f", low)
        while (length(text) < 3) text = "0" text
        return sign substr(text, 1, length(text) - 2) "." substr(text, length(text) - 1)
    }
    function split_record(record, fields,    parts, count, i, j, pieces, pieces_count, field) {
        if (index(record, "\"") == 0) return split(record, fields, ",")
        count = split(record, parts, "\"")
        field = ""
        n = 0
        for (i = 1; i <= count; i++) {
            if (i % 2 == 0) { field = field parts[i]; continue }
            pieces_count = split(parts[i], pieces, ",")
            if (pieces_count == 0) continue
            field = field pieces[1]
            for (j = 2; j <= pieces_count; j++) { fields[++n] = field; field = pieces[j] }
        }
        fields[++n] = field
        return n
    }
    BEGIN { wanted_count = split(money, wanted, " ") }
    {
        line = $0
        if (NR == 1) sub(/^\xef\xbb\xbf/, "", line)
        record = open ? record "\n" line : line
        quotes += gsub(/"/, "\"", line)
        if (quotes % 2 == 1) { open = 1; next }
        open = 0
        quotes = 0
        if (!header_seen) {
            header_seen = 1
            split_record(record, names)
            for (i in names) position[names[i]] = i
            next
        }
        records++
        if (wanted_count == 0) next
        split_record(record, fields)
        for (k = 1; k <= wanted_count; k++) add_cents(wanted[k], fields[position[wanted[k]]])
    }
    END {
        if (open) print "the last record has an unterminated quote (truncated?)"
        if (bad != "") print "values that are not money:" bad (bad_count > 3 ? " ..." : "")
        line = "rows=" (records + 0)
        for (k = 1; k <= wanted_count; k++) line = line " " wanted[k] "=" total(wanted[k])
        print line
    }
    '
}

strip_bom() {
    awk 'NR == 1 { sub(/^\xef\xbb\xbf/, "") } { print }' "$1"
}

while IFS="$sep" read -r path model format rows sha256 sums select_list; do
    [[ -z "$path" ]] && continue
    start_file "$path" "$sha256" || continue
    if [[ "$format" != "csv" ]]; then
        report_file "$path" "sha256 matches the manifest"
        continue
    fi

    money=""
    for pair in $sums; do money="$money ${pair%%=*}"; done
    counted=$(count_csv "$money" < "$file")
    from_file=${counted##*$'\n'}
    [[ "$counted" == *$'\n'* ]] && problems+=("${counted%$'\n'*}")
    expected="rows=$rows${sums:+ $sums}"
    [[ "$from_file" == "$expected" ]] || problems+=("file has $from_file, manifest $expected")

    from_database=$(awk -F "$sep" -v path="$path" -v names="$money" '
        $1 == path {
            count = split(names, name, " ")
            line = "rows=" $2
            for (i = 1; i <= count; i++) line = line " " name[i] "=" $(i + 2)
            print line
        }' <<< "$database_stats")
    [[ "$from_database" == "$expected" ]] || problems+=("PostgreSQL has ${from_database:-nothing}, manifest $expected")

    # The same rows as psql's own CSV of the relation now (sorted: the order is the exporter's).
    relation="analytics.\"$model\""
    difference=$(diff <(strip_bom "$file" | sort) \
        <(run_psql -c "\\copy (select $select_list from $relation) to stdout with (format csv, header)" | sort) \
        | awk '/^[<>]/ && shown < 4 { printf "%s%s", (shown++ ? " | " : ""), $0 }')
    [[ -z "$difference" ]] || problems+=("rows differ from psql (< file, > database): $difference")

    report_file "$path" "$from_file; sha256 and rows match the manifest and psql"
done <<< "$plan"

verdict "$dir" "$manifest lists no files" "Export again: python cli.py export"
