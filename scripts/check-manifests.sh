#!/usr/bin/env bash
# Validate every deployment manifest of the repository, offline, so that
# they cannot rot unnoticed (part of `make test`):
#
#   - docker-compose.yml, loaded by compose-go (Docker Compose's own loader:
#     the Compose Specification's schema, interpolation, consistency);
#   - deploy/kubernetes: each manifest, and the kustomization as
#     `kubectl apply -k` renders it, decoded strictly into the Kubernetes
#     API types (unknown fields, wrong types and unknown kinds refused),
#     and the references between the objects resolved;
#   - the routes file the kustomization ships (deploy/kubernetes/
#     switchyard.toml), which must be the repository's switchyard.toml with
#     the settings a pod needs;
#   - the fixtures in tests/manifests/invalid, each of which must be
#     rejected, with the error it names;
#   - the Prometheus alert rules (deploy/kubernetes/monitoring): every
#     switchyard metric they use must be one the binary exposes (listed in
#     host/src/metrics.rs).
#
# The checker is a Go program (tools/manifest-check, its dependencies pinned
# in go.sum), built on first use into target/manifest-check and rebuilt
# when its sources change; Go's module and build caches keep later builds
# fast.
#
#   scripts/check-manifests.sh                 check
#   scripts/check-manifests.sh --sync-routes   rewrite deploy/kubernetes/switchyard.toml
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { echo "check-manifests: $*" >&2; }

k8s=deploy/kubernetes
routes_copy=$k8s/switchyard.toml

# The routes file for a pod: switchyard.toml with four settings changed.
#   plugins_dir: a relative one is resolved against the routes file's
#     folder, /etc/switchyard in a pod (a read-only ConfigMap); the plugins
#     are in the image, at /srv/switchyard/target/plugins (Dockerfile).
#   [http] public: loopback is unreachable from outside the pod; all
#     interfaces, so that the Service's `public` port reaches it.
#   [kafka] topic_partitions: 12, so that the topics switchyard creates
#     can be shared by up to 12 replicas.
#   [events_api] read_tokens: added. Beyond loopback, switchyard refuses
#     to serve GET /events to anyone; reads need the token in
#     SWITCHYARD_EVENTS_READ_TOKEN (the Secret).
# Each must match exactly one line: if switchyard.toml changes them, this
# fails and says so, rather than shipping a copy with the old settings.
render_routes() {
    awk '
        BEGIN {
            print "# GENERATED from the repository'"'"'s switchyard.toml by"
            print "# `scripts/check-manifests.sh --sync-routes`; edit that file, then run it."
            print "# Changed for a container (a pod, docker compose): plugins_dir (the"
            print "# plugins in the image), [http] public (all interfaces, for port 5000),"
            print "# [kafka] topic_partitions (12) and [events_api] read_tokens (GET"
            print "# /events needs a bearer token)."
            print ""
        }
        $0 == "plugins_dir = \"target/plugins\"" {
            print "plugins_dir = \"/srv/switchyard/target/plugins\""; plugins++; next
        }
        $0 == "public = \"127.0.0.1:5000\"" {
            print "public = \"0.0.0.0:5000\""
            print ""
            print "[kafka]"
            print "topic_partitions = 12  # topics switchyard creates: 12 divides among 1, 2, 3, 4, 6 or 12 replicas"
            public++; next
        }
        $0 == "recent_buffer = \"recent-events\"    # GET /events reads this buffer" {
            print
            print "read_tokens = [{ \"$env\" = \"SWITCHYARD_EVENTS_READ_TOKEN\" }]  # GET /events needs one"
            tokens++; next
        }
        { print }
        END {
            if (plugins != 1) { print "switchyard.toml: expected one line plugins_dir = \"target/plugins\", found " plugins + 0 "; update render_routes in scripts/check-manifests.sh" > "/dev/stderr"; exit 1 }
            if (public != 1) { print "switchyard.toml: expected one line public = \"127.0.0.1:5000\", found " public + 0 "; update render_routes in scripts/check-manifests.sh" > "/dev/stderr"; exit 1 }
            if (tokens != 1) { print "switchyard.toml: expected one line recent_buffer = \"recent-events\"    # GET /events reads this buffer, found " tokens + 0 "; update render_routes in scripts/check-manifests.sh" > "/dev/stderr"; exit 1 }
        }
    ' switchyard.toml
}

# The alert rules may only use metrics that exist.
alerts=$k8s/monitoring/switchyard-alerts.rules.yml
[[ -f "$alerts" ]] || { say "missing $alerts"; exit 1; }
grep -q '^groups:' "$alerts" || { say "$alerts: no top-level \`groups:\`"; exit 1; }
for metric in $(grep -o 'switchyard_[a-z_]*' "$alerts" | sort -u); do
    grep -q "\`$metric\`" host/src/metrics.rs || {
        say "$alerts uses $metric, which host/src/metrics.rs does not list"
        exit 1
    }
done

# The image must still hold the plugins where the pod's routes file says.
grep -Eq '^COPY --from=build (--chown=[0-9:]+ )?/src/target/plugins /srv/switchyard/target/plugins$' Dockerfile || {
    say "the Dockerfile no longer copies the plugins to /srv/switchyard/target/plugins, where $routes_copy expects them"
    exit 1
}

expected=$(mktemp)
trap 'rm -f "$expected"' EXIT
render_routes >"$expected"

if [ "${1:-}" = "--sync-routes" ]; then
    cp "$expected" "$routes_copy"
    say "wrote $routes_copy"
    exit 0
elif [ $# -gt 0 ]; then
    say "usage: $0 [--sync-routes]"
    exit 2
fi

if ! diff -u "$routes_copy" "$expected" >&2; then
    say "$routes_copy is not switchyard.toml as a pod needs it: run scripts/check-manifests.sh --sync-routes"
    exit 1
fi
say "ok   $routes_copy matches switchyard.toml"

if ! command -v go >/dev/null 2>&1; then
    say "Go not found: install Go 1.26 or newer (https://go.dev/dl), or Go 1.21+ with access to the Go module proxy"
    exit 1
fi
# An older Go (1.21 or newer) fetches the version go.mod needs from the Go
# module proxy, unless the environment says otherwise.
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

tool=tools/manifest-check
bin=target/manifest-check/manifest-check
stamp=target/manifest-check/stamp
sources=$( (go version; cat "$tool"/go.mod "$tool"/go.sum "$tool"/*.go) | sha256sum | cut -d' ' -f1)
if [ ! -x "$bin" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$sources" ]; then
    say "building $tool"
    mkdir -p "$(dirname "$bin")"
    # -mod=readonly: the versions in go.mod and go.sum, never others.
    # Unoptimised (-N -l) and without symbols (-s -w): a third less
    # compile time on a cold cache, and the checker runs in under a second
    # either way.
    (cd "$tool" && go build -mod=readonly -trimpath -gcflags='all=-N -l' -ldflags='-s -w' -o "$root/$bin" .)
    echo "$sources" >"$stamp"
fi

manifests=()
for f in "$k8s"/*.yaml; do
    case "$(basename "$f")" in
        kustomization.yaml | secret.example.yaml) ;;
        *) manifests+=(--manifest "$f") ;;
    esac
done

"$bin" \
    --compose docker-compose.yml \
    --provided "$k8s/secret.example.yaml" \
    "${manifests[@]}" \
    --kustomize "$k8s" \
    --invalid tests/manifests/invalid
