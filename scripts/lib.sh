# What scripts/verify.sh and scripts/verify_lake.sh share; sourced, not run.
#
# Sets: project (the checkout), psql_command, sep (the field separator of psql's plans).
# Defines: run_psql, require_manifest, sha256_of, start_file, report_file, verdict.
#   PSQL  the psql command to run (default: the project's ".venv/bin/python cli.py psql", which
#         finds the tracker's database the way every command does); arguments are appended.

set -uo pipefail
export LC_ALL=C

project=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
psql_command=${PSQL:-"$project/.venv/bin/python $project/cli.py psql"}
# Fields are separated by the ASCII unit separator: tabs would merge around an empty field.
sep=$'\x1f'
files=0
failed=0

run_psql() {
    # $psql_command is a command line: word splitting is intended.
    # shellcheck disable=SC2086
    $psql_command -X -q -At -v ON_ERROR_STOP=1 "$@"
}

# require_manifest MANIFEST HINT: exit 1 with one line when MANIFEST is missing.
require_manifest() {
    if [[ ! -f "$1" ]]; then
        echo "FAIL: $1 does not exist. $2" >&2
        exit 1
    fi
}

# sha256_of FILE: the file's sha256, hex.
sha256_of() {
    sha256sum "$1" | awk '{ print $1 }'
}

# start_file PATH SHA256: begin checking "$dir/PATH" (sets file, counts it, resets problems
# and notes a sha256 that differs from the manifest's); false, with a line, when it is missing.
start_file() {
    files=$((files + 1))
    file="$dir/$1"
    problems=()
    if [[ ! -f "$file" ]]; then
        echo "FAIL $1: missing"
        failed=$((failed + 1))
        return 1
    fi
    local actual
    actual=$(sha256_of "$file")
    [[ "$actual" == "$2" ]] || problems+=("sha256 $actual, manifest $2")
}

# report_file PATH PASS_TEXT: one line for a file, from the problems array; counts failures.
report_file() {
    if ((${#problems[@]})); then
        echo "FAIL $1: $(printf '%s; ' "${problems[@]}")"
        failed=$((failed + 1))
    else
        echo "PASS $1: $2"
    fi
}

# verdict DIR EMPTY_TEXT HINT: the last line; exit 1 when no file was listed or any failed.
verdict() {
    if ((files == 0)); then
        echo "FAIL: $2"
        exit 1
    fi
    if ((failed)); then
        echo "FAIL: $failed of $files files in $1 do not match. $3"
        exit 1
    fi
    echo "PASS: $files files in $1 match the manifest and PostgreSQL"
}
