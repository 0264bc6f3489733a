# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Rewriting a marked section of a Markdown file (the benchmark results in docs/benchmarks.md): the lines
# between a line with BEGIN_MARK (say <!-- bench:begin -->) and the next line with END_MARK. Marks are
# matched as plain text anywhere in a line. The file is rewritten in place (through a temporary
# FILE.tmp.PID), so that it keeps its owner and mode. Source it from bash.

# doc_has_section FILE BEGIN_MARK END_MARK: true if FILE has both marks.
doc_has_section() {
  grep -qF -- "$2" "$1" && grep -qF -- "$3" "$1"
}

# doc_ensure_section FILE BEGIN_MARK END_MARK BLOCK [BEFORE_MARK]: if FILE lacks either mark, adds BLOCK
# (text holding both marks, one line each, perhaps with a heading) as lines of its own: at the end of
# the file, or just before the line with BEFORE_MARK (a section inside another one).
doc_ensure_section() {
  local file=$1 block=$4 before=${5:-}
  doc_has_section "$file" "$2" "$3" && return 0
  if [[ -z $before ]]; then
    printf '%s\n' "$block" >>"$file"
    return 0
  fi
  DOC_BLOCK=$block DOC_BEFORE=$before awk 'index($0, ENVIRON["DOC_BEFORE"]) { print ENVIRON["DOC_BLOCK"] }
    { print }' "$file" >"$file.tmp.$$"
  cat "$file.tmp.$$" >"$file"
  rm -f "$file.tmp.$$"
}

# doc_replace_section FILE BEGIN_MARK END_MARK CONTENT_FILE: the lines between the marks become those of
# CONTENT_FILE; the mark lines stay. Fails, changing nothing, if FILE lacks either mark.
doc_replace_section() {
  local file=$1
  if ! doc_has_section "$file" "$2" "$3"; then
    printf 'doc_replace_section: no %s ... %s section in %s\n' "$2" "$3" "$file" >&2
    return 1
  fi
  DOC_BEGIN=$2 DOC_END=$3 DOC_CONTENT=$4 awk '
    index($0, ENVIRON["DOC_BEGIN"]) { print; while ((getline line < ENVIRON["DOC_CONTENT"]) > 0) print line; skip = 1; next }
    index($0, ENVIRON["DOC_END"]) { skip = 0 }
    !skip { print }' "$file" >"$file.tmp.$$"
  cat "$file.tmp.$$" >"$file"
  rm -f "$file.tmp.$$"
}
