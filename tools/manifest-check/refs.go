package main

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	psaapi "k8s.io/pod-security-admission/api"
	psa "k8s.io/pod-security-admission/policy"
)

// workload is an object that makes pods from a template.
type workload struct {
	object
	namespace, name string
	template        *corev1.PodTemplateSpec
}

// set indexes a set of objects for reference checks.
type set struct {
	// name -> its labels
	namespaces map[string]map[string]string
	workloads  []workload
	// "namespace/name" -> the keys it holds
	configMaps, secrets map[string]map[string]bool
}

func index(objs []object) *set {
	s := &set{
		namespaces: map[string]map[string]string{},
		configMaps: map[string]map[string]bool{},
		secrets:    map[string]map[string]bool{},
	}
	for _, o := range objs {
		ns, name := o.meta()
		var tmpl *corev1.PodTemplateSpec
		switch v := o.obj.(type) {
		case *corev1.Namespace:
			s.namespaces[v.Name] = v.Labels
		case *corev1.ConfigMap:
			keys := map[string]bool{}
			for k := range v.Data {
				keys[k] = true
			}
			for k := range v.BinaryData {
				keys[k] = true
			}
			s.configMaps[ns+"/"+name] = keys
		case *corev1.Secret:
			keys := map[string]bool{}
			for k := range v.Data {
				keys[k] = true
			}
			for k := range v.StringData {
				keys[k] = true
			}
			s.secrets[ns+"/"+name] = keys
		case *appsv1.Deployment:
			tmpl = &v.Spec.Template
		case *appsv1.StatefulSet:
			tmpl = &v.Spec.Template
		case *appsv1.DaemonSet:
			tmpl = &v.Spec.Template
		case *batchv1.Job:
			tmpl = &v.Spec.Template
		case *batchv1.CronJob:
			tmpl = &v.Spec.JobTemplate.Spec.Template
		}
		if tmpl != nil {
			s.workloads = append(s.workloads, workload{o, ns, name, tmpl})
		}
	}
	return s
}

// checkReferences checks what the API server accepts but what would not
// work: references between objects that do not resolve.
//
//   - the namespace of every object exists among the objects, when the set
//     creates any namespace;
//   - a workload's selector selects its own pod template, and its
//     containers mount only volumes the pod declares;
//   - its pods meet the Pod Security level their namespace enforces
//     (pod-security.kubernetes.io/enforce), as the admission controller
//     judges them: otherwise the workload is accepted but its pods are
//     refused, one by one, at run time;
//   - a pod's ConfigMap and Secret references (env, envFrom, volumes; not
//     those marked optional) name objects of the set that hold those keys;
//   - a probe's named port is a port of its container;
//   - a Service and a PodDisruptionBudget select pods of some workload, and
//     a Service's target ports are ports those pods declare;
//   - an autoscaler targets a workload of the set, and scaling on a
//     resource's utilisation has every container request that resource.
func checkReferences(objs []object) error {
	s := index(objs)
	var problems []string
	report := func(o object, format string, args ...any) {
		problems = append(problems, o.where+": "+fmt.Sprintf(format, args...))
	}
	for _, o := range objs {
		ns, _ := o.meta()
		if _, ok := s.namespaces[ns]; ns != "" && len(s.namespaces) > 0 && !ok {
			report(o, "namespace %q is not among the Namespaces created here", ns)
		}
	}
	for _, w := range s.workloads {
		problems = append(problems, s.checkWorkload(w)...)
	}
	for _, o := range objs {
		ns, _ := o.meta()
		switch v := o.obj.(type) {
		case *corev1.Service:
			if v.Spec.Type == corev1.ServiceTypeExternalName || len(v.Spec.Selector) == 0 {
				continue
			}
			pods := s.selected(ns, labels.SelectorFromSet(v.Spec.Selector))
			if len(pods) == 0 {
				report(o, "selector %v selects the pods of no workload", v.Spec.Selector)
				continue
			}
			for _, p := range v.Spec.Ports {
				target := p.TargetPort
				if target.Type == intstr.Int && target.IntVal == 0 {
					target = intstr.FromInt32(p.Port)
				}
				for _, w := range pods {
					if !declaresPort(w.template.Spec.Containers, target) {
						report(o, "port %q targets %s, which no container of %s declares", p.Name, target.String(), w.where)
					}
				}
			}
		case *policyv1.PodDisruptionBudget:
			sel, err := metav1.LabelSelectorAsSelector(v.Spec.Selector)
			if err != nil {
				report(o, "selector: %v", err)
			} else if len(s.selected(ns, sel)) == 0 {
				report(o, "selector %s selects the pods of no workload", sel)
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			ref := v.Spec.ScaleTargetRef
			var target *workload
			for i, w := range s.workloads {
				if w.namespace == ns && w.name == ref.Name && w.gvk.Kind == ref.Kind && w.gvk.GroupVersion().String() == ref.APIVersion {
					target = &s.workloads[i]
				}
			}
			if target == nil {
				report(o, "scaleTargetRef %s %s/%s is not among the objects", ref.APIVersion, ref.Kind, ref.Name)
				continue
			}
			for _, m := range v.Spec.Metrics {
				if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil ||
					m.Resource.Target.Type != autoscalingv2.UtilizationMetricType {
					continue
				}
				for _, c := range target.template.Spec.Containers {
					if _, ok := c.Resources.Requests[m.Resource.Name]; !ok {
						report(o, "scales on %s utilisation, but container %q of %s requests no %s",
							m.Resource.Name, c.Name, target.where, m.Resource.Name)
					}
				}
			}
		}
	}
	return joinProblems(problems)
}

func (s *set) checkWorkload(w workload) []string {
	var problems []string
	report := func(format string, args ...any) {
		problems = append(problems, w.where+": "+fmt.Sprintf(format, args...))
	}
	var selector *metav1.LabelSelector
	switch v := w.obj.(type) {
	case *appsv1.Deployment:
		selector = v.Spec.Selector
	case *appsv1.StatefulSet:
		selector = v.Spec.Selector
	case *appsv1.DaemonSet:
		selector = v.Spec.Selector
	}
	if selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(selector)
		if err != nil {
			report("selector: %v", err)
		} else if !sel.Matches(labels.Set(w.template.Labels)) {
			report("selector %s does not select its own pod template (labels %v)", sel, w.template.Labels)
		}
	}
	if nsLabels, ok := s.namespaces[w.namespace]; ok {
		policy, errs := psaapi.PolicyToEvaluate(nsLabels, psaapi.Policy{
			Enforce: psaapi.LevelVersion{Level: psaapi.LevelPrivileged, Version: psaapi.LatestVersion()},
		})
		if len(errs) > 0 {
			report("namespace %q: %v", w.namespace, errs.ToAggregate())
		} else if result := psa.AggregateCheckResults(podSecurity.EvaluatePod(policy.Enforce, &w.template.ObjectMeta, &w.template.Spec)); !result.Allowed {
			report("its pods violate the %q Pod Security level namespace %q enforces: %s: %s",
				policy.Enforce.String(), w.namespace, result.ForbiddenReason(), result.ForbiddenDetail())
		}
	}
	spec := &w.template.Spec
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	containers := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range containers {
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				report("container %q mounts volume %q, which the pod does not declare", c.Name, m.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil && !isTrue(r.Optional) {
				problems = append(problems, s.lookup(w, "ConfigMap", s.configMaps, r.Name, r.Key,
					fmt.Sprintf("container %q env %s", c.Name, e.Name))...)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil && !isTrue(r.Optional) {
				problems = append(problems, s.lookup(w, "Secret", s.secrets, r.Name, r.Key,
					fmt.Sprintf("container %q env %s", c.Name, e.Name))...)
			}
		}
		for _, e := range c.EnvFrom {
			if r := e.ConfigMapRef; r != nil && !isTrue(r.Optional) {
				problems = append(problems, s.lookup(w, "ConfigMap", s.configMaps, r.Name, "",
					fmt.Sprintf("container %q envFrom", c.Name))...)
			}
			if r := e.SecretRef; r != nil && !isTrue(r.Optional) {
				problems = append(problems, s.lookup(w, "Secret", s.secrets, r.Name, "",
					fmt.Sprintf("container %q envFrom", c.Name))...)
			}
		}
		probes := []struct {
			what  string
			probe *corev1.Probe
		}{{"startupProbe", c.StartupProbe}, {"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}}
		for _, p := range probes {
			what, probe := p.what, p.probe
			if probe == nil {
				continue
			}
			var port *intstr.IntOrString
			switch {
			case probe.HTTPGet != nil:
				port = &probe.HTTPGet.Port
			case probe.TCPSocket != nil:
				port = &probe.TCPSocket.Port
			}
			if port != nil && port.Type == intstr.String && !declaresPort([]corev1.Container{c}, *port) {
				report("container %q %s: port %q is not a port of the container", c.Name, what, port.StrVal)
			}
		}
	}
	for _, v := range spec.Volumes {
		switch {
		case v.ConfigMap != nil && !isTrue(v.ConfigMap.Optional):
			problems = append(problems, s.lookupItems(w, "ConfigMap", s.configMaps, v.ConfigMap.Name, v.ConfigMap.Items, v.Name)...)
		case v.Secret != nil && !isTrue(v.Secret.Optional):
			problems = append(problems, s.lookupItems(w, "Secret", s.secrets, v.Secret.SecretName, v.Secret.Items, v.Name)...)
		}
	}
	return problems
}

func (s *set) lookup(w workload, kind string, objs map[string]map[string]bool, name, key, what string) []string {
	keys, ok := objs[w.namespace+"/"+name]
	switch {
	case !ok:
		return []string{fmt.Sprintf("%s: %s: %s %q is not among the objects", w.where, what, kind, name)}
	case key != "" && !keys[key]:
		return []string{fmt.Sprintf("%s: %s: %s %q has no key %q", w.where, what, kind, name, key)}
	}
	return nil
}

func (s *set) lookupItems(w workload, kind string, objs map[string]map[string]bool, name string, items []corev1.KeyToPath, volume string) []string {
	what := fmt.Sprintf("volume %q", volume)
	problems := s.lookup(w, kind, objs, name, "", what)
	if len(problems) > 0 {
		return problems
	}
	for _, item := range items {
		problems = append(problems, s.lookup(w, kind, objs, name, item.Key, what)...)
	}
	return problems
}

// selected returns the workloads in `ns` whose pods `sel` selects.
func (s *set) selected(ns string, sel labels.Selector) []workload {
	var found []workload
	for _, w := range s.workloads {
		if w.namespace == ns && !sel.Empty() && sel.Matches(labels.Set(w.template.Labels)) {
			found = append(found, w)
		}
	}
	return found
}

// declaresPort: a named port is a container port of that name; a number,
// a declared container port (Kubernetes would send traffic to an
// undeclared one, but here every port served is declared, so a number
// that matches none is a mistake).
func declaresPort(containers []corev1.Container, port intstr.IntOrString) bool {
	for _, c := range containers {
		for _, p := range c.Ports {
			if (port.Type == intstr.String && p.Name == port.StrVal) ||
				(port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
				return true
			}
		}
	}
	return false
}

func isTrue(b *bool) bool { return b != nil && *b }

// podSecurity judges pods as the Pod Security admission controller does.
var podSecurity = func() psa.Evaluator {
	e, err := psa.NewEvaluator(psa.DefaultChecks(), nil)
	if err != nil {
		panic(err)
	}
	return e
}()
