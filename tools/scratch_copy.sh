# Sourced by the tools that build fastconv another way (sanitize.sh, test_build.sh), from
# the checkout's root. copy_tree_to DIR copies the tracked sources plus any uncommitted
# edits, without the normal build, into DIR; the tests there find the real MNIST files
# through FASTCONV_SHARED_MNIST, since DIR is not next to ../shared.

for d in ../shared/data/mnist ../../shared/data/mnist; do
    if [ -z "${FASTCONV_SHARED_MNIST:-}" ] && [ -d "$d" ]; then
        export FASTCONV_SHARED_MNIST=$(cd "$d" && pwd)
    fi
done

copy_tree_to() {
    mkdir -p "$1"
    # a tracked file deleted in the working tree is still listed: copy what exists
    git ls-files -z --cached --others --exclude-standard --deduplicate \
        | while IFS= read -rd '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done \
        | xargs -0 cp --parents -t "$1"
}
