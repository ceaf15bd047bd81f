#!/usr/bin/env bash
# Does feedback learned on some questions help (or at least not hurt) other questions?
#
#   bash benches/feedback_eval.sh [KEFU_BINARY]
#
# Splits ../shared/eval/dev/queries.tsv by query number: odd numbers are "seen" (their judged answer,
# when suggested, counts as adopted by an agent: `kefu suggest --feedback`), even numbers are held out.
# Scores the held-out half through the suggestion pipeline without and with that feedback.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
kefu=$(realpath "${1:-$here/target/release/kefu}")
eval_dir=$(realpath "$here/../shared/eval")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
awk -F'\t' '{ n = substr($1, length($1) - 4) + 0; if (n % 2 == 1) print > "'"$work"'/seen.tsv"; else print > "'"$work"'/held_out.tsv" }' \
  "$eval_dir/dev/queries.tsv"
echo "seen: $(wc -l <"$work/seen.tsv") questions; held out: $(wc -l <"$work/held_out.tsv")"
# evaluate.sh calls `$KEFU index|suggest ...`; this wrapper adds the feedback file to `suggest`.
cat >"$work/kefu-with-feedback" <<WRAPPER
#!/usr/bin/env bash
if [ "\$1" = suggest ]; then exec "$kefu" "\$@" --feedback "$work/seen.tsv"; fi
exec "$kefu" "\$@"
WRAPPER
chmod +x "$work/kefu-with-feedback"
echo "== held out, no feedback =="
KEFU_EVAL_CMD=suggest "$eval_dir/evaluate.sh" "$kefu" "$work/held_out.tsv" 2>/dev/null
echo "== held out, feedback from the seen half =="
KEFU_EVAL_CMD=suggest "$eval_dir/evaluate.sh" "$work/kefu-with-feedback" "$work/held_out.tsv" 2>/dev/null
# The same questions asked again: what the boost is for.
sed -i "s#$work/seen.tsv#$work/held_out.tsv#" "$work/kefu-with-feedback"
echo "== held out, feedback from the held-out questions themselves (repeat questions) =="
KEFU_EVAL_CMD=suggest "$eval_dir/evaluate.sh" "$work/kefu-with-feedback" "$work/held_out.tsv" 2>/dev/null
