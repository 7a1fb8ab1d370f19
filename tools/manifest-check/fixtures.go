package main

import (
	"os"
	"path/filepath"
	"strings"
)

// checkFixtures validates each fixture in `dir`, each of which must be
// rejected with the errors its `# expect: TEXT` lines name (TEXT a part of
// the error message). By name:
//
//   - compose-*.yml: a Compose file;
//   - a directory: a kustomization (its expectations in kustomization.yaml);
//   - any other *.yaml: Kubernetes manifests, validated as a complete set
//     (references resolved among its own objects).
func checkFixtures(dir string, r *report) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		r.add("fixtures "+dir, err)
		return
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir():
			r.fixture(path, expectations(filepath.Join(path, "kustomization.yaml")), validateKustomization(path, nil, nil))
		case strings.HasPrefix(e.Name(), "compose-") && strings.HasSuffix(e.Name(), ".yml"):
			r.fixture(path, expectations(path), validateCompose(path))
		case strings.HasSuffix(e.Name(), ".yaml"):
			r.fixture(path, expectations(path), validateSet(path))
		}
	}
}

// expectations reads the `# expect: TEXT` lines of a fixture.
func expectations(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var expect []string
	for _, line := range strings.Split(string(data), "\n") {
		if text, ok := strings.CutPrefix(strings.TrimSpace(line), "# expect:"); ok {
			expect = append(expect, strings.TrimSpace(text))
		}
	}
	return expect
}
