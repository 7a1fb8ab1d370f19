// manifest-check validates the repository's deployment manifests offline:
//
//   - Compose files with compose-go, the loader of Docker Compose itself:
//     the Compose Specification's JSON schema, interpolation and the
//     project's consistency (services depended on exist, and so on).
//   - Kubernetes manifests: every document decoded strictly into the
//     official API types, k8s.io/api (an unknown or misspelt field, a field
//     given twice, a wrong type or an unknown kind is an error, as with
//     `kubectl apply --validate=strict`), then the references between
//     objects (a Service that selects no pod, a key missing from a Secret,
//     a probe on a port that no container declares, ...), which no single
//     object shows.
//   - A kustomization: rendered as `kubectl apply -k` would (with its load
//     restrictions), the result checked as above, and every manifest file
//     of its folder either among its resources or named as provided by the
//     operator (--provided: a Secret made outside the repository).
//   - Fixtures that must be rejected (--invalid DIR): each names the error
//     it must be rejected with, so that a check that stops failing, or
//     fails for another reason, is noticed.
//
// It exits non-zero if anything is invalid, or if a fixture is accepted.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// multiFlag is a flag that may be given several times.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var compose, kustomize, manifests, provided, invalid multiFlag
	flag.Var(&compose, "compose", "a Compose file to validate (repeatable)")
	flag.Var(&kustomize, "kustomize", "a kustomization directory to render and validate (repeatable)")
	flag.Var(&manifests, "manifest", "a Kubernetes manifest file to validate on its own (repeatable)")
	flag.Var(&provided, "provided", "a manifest of objects the operator creates outside the kustomizations, "+
		"such as a Secret's example: validated, and referenced objects may be found in it (repeatable)")
	flag.Var(&invalid, "invalid", "a directory of fixtures that must each be rejected (repeatable)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "manifest-check: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}

	r := &report{}
	var providedObjs []object
	for _, path := range provided {
		objs, err := validateFile(path)
		r.add("provided "+path, err)
		providedObjs = append(providedObjs, objs...)
	}
	for _, path := range compose {
		r.add("compose "+path, validateCompose(path))
	}
	for _, path := range manifests {
		_, err := validateFile(path)
		r.add("manifest "+path, err)
	}
	for _, dir := range kustomize {
		r.add("kustomization "+dir, validateKustomization(dir, provided, providedObjs))
	}
	for _, dir := range invalid {
		checkFixtures(dir, r)
	}
	r.finish()
}

// report prints one line per check and remembers failures.
type report struct {
	valid, rejected, failed int
}

func (r *report) add(what string, err error) {
	if err != nil {
		r.failed++
		fmt.Printf("FAIL %s\n%s\n", what, indent(err.Error()))
		return
	}
	r.valid++
	fmt.Printf("ok   %s\n", what)
}

// fixture records the outcome of a fixture that must be rejected with an
// error containing each of `expect`.
func (r *report) fixture(path string, expect []string, err error) {
	switch {
	case len(expect) == 0:
		r.failed++
		fmt.Printf("FAIL fixture %s: it names no `# expect:` error\n", path)
	case err == nil:
		r.failed++
		fmt.Printf("FAIL fixture %s: accepted, but must be rejected with %q\n", path, expect)
	default:
		for _, want := range expect {
			if !strings.Contains(err.Error(), want) {
				r.failed++
				fmt.Printf("FAIL fixture %s: rejected, but not with %q:\n%s\n", path, want, indent(err.Error()))
				return
			}
		}
		r.rejected++
		fmt.Printf("ok   fixture %s rejected: %s\n", path, firstLine(err.Error()))
	}
}

func (r *report) finish() {
	fmt.Printf("manifest-check: %d valid, %d fixtures rejected as expected, %d problems\n",
		r.valid, r.rejected, r.failed)
	if r.failed > 0 {
		os.Exit(1)
	}
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
