package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// object is one decoded Kubernetes document.
type object struct {
	// Where it came from, for messages: "file.yaml#2 Deployment/name".
	where string
	gvk   schema.GroupVersionKind
	obj   runtime.Object
}

func (o object) meta() (namespace, name string) {
	m, err := meta.Accessor(o.obj)
	if err != nil {
		return "", ""
	}
	return m.GetNamespace(), m.GetName()
}

// The API groups these manifests may use. A kind outside them is an error
// rather than skipped: a check that silently passes what it cannot read is
// no check. Add a group here when a manifest needs it.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		policyv1.AddToScheme, autoscalingv1.AddToScheme, autoscalingv2.AddToScheme,
		networkingv1.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strict decodes YAML or JSON into the registered types, refusing unknown
// and duplicate fields as `kubectl apply --validate=strict` does.
var strict = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// decodeDocuments decodes every document of a multi-document YAML stream.
// Documents holding nothing (comments only) are skipped. All problems are
// reported, not only the first.
func decodeDocuments(source string, data []byte) ([]object, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []object
	var problems []string
	for index := 1; ; index++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		var generic map[string]any
		if err := yaml.Unmarshal(doc, &generic); err != nil {
			problems = append(problems, fmt.Sprintf("%s#%d: not YAML: %v", source, index, err))
			continue
		}
		if generic == nil {
			continue
		}
		where := fmt.Sprintf("%s#%d %s", source, index, describe(generic))
		obj, gvk, err := strict.Decode(doc, nil, nil)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		objs = append(objs, object{where: where, gvk: *gvk, obj: obj})
	}
	return objs, joinProblems(problems)
}

// describe names a document by kind and name, read loosely, for messages
// about documents that do not decode.
func describe(doc map[string]any) string {
	kind, _ := doc["kind"].(string)
	name := ""
	if m, ok := doc["metadata"].(map[string]any); ok {
		name, _ = m["name"].(string)
	}
	if kind == "" {
		kind = "(no kind)"
	}
	return kind + "/" + name
}

// validateFile decodes a manifest file on its own. References
// to other objects are not followed: its names may be rewritten by the
// kustomization that uses it (generated ConfigMaps get a hash suffix).
func validateFile(path string) ([]object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	objs, err := decodeDocuments(path, data)
	if err == nil && len(objs) == 0 {
		err = fmt.Errorf("%s holds no Kubernetes object", path)
	}
	return objs, err
}

// validateSet validates a file as a complete set of objects: decoded, and
// its references resolved among its own objects.
func validateSet(path string) error {
	objs, err := validateFile(path)
	if err != nil {
		return err
	}
	return checkReferences(objs)
}

// validateKustomization renders `dir` as `kubectl apply -k` does, then
// validates the result with the provided objects, and checks that each
// manifest file in `dir` is either among its resources or provided.
func validateKustomization(dir string, providedPaths []string, provided []object) error {
	rendered, err := renderKustomization(dir)
	if err != nil {
		return err
	}
	objs, err := decodeDocuments(dir+" (rendered)", rendered)
	if err != nil {
		return err
	}
	if err := checkReferences(append(objs, provided...)); err != nil {
		return err
	}
	return checkUnlisted(dir, providedPaths)
}

func renderKustomization(dir string) ([]byte, error) {
	// The defaults are those of `kubectl apply -k`: no file outside `dir`,
	// no plugins.
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	return resources.AsYaml()
}

// checkUnlisted: a manifest next to kustomization.yaml that it does not
// list would never be applied; one the operator applies by hand must be
// named with --provided.
func checkUnlisted(dir string, providedPaths []string) error {
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return err
	}
	var k ktypes.Kustomization
	if err := k.Unmarshal(data); err != nil {
		return err
	}
	known := map[string]bool{"kustomization.yaml": true}
	for _, r := range k.Resources {
		known[filepath.Clean(r)] = true
	}
	for _, p := range providedPaths {
		if rel, err := filepath.Rel(dir, p); err == nil {
			known[rel] = true
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var problems []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) || known[name] {
			continue
		}
		problems = append(problems, fmt.Sprintf("%s: not among the resources of %s/kustomization.yaml "+
			"(list it there, or name it with --provided if the operator creates it)", filepath.Join(dir, name), dir))
	}
	sort.Strings(problems)
	return joinProblems(problems)
}
