// Command validate checks the Kubernetes manifests of deploy/k8s offline, as strictly as the
// Kubernetes API types allow:
//
//   - every document of every *.yaml file decodes into its typed object (client-go's scheme:
//     core, apps, autoscaling, policy, networking) in strict mode: unknown fields, duplicate
//     fields and mistyped values are errors, as are kinds outside that scheme;
//   - kustomization.yaml decodes strictly into kustomize's Kustomization type, lists exactly
//     the *.yaml files of the folder, and builds with kustomize (the code behind
//     `kubectl apply -k`); each built object is decoded strictly again;
//   - names, labels and port names follow the Kubernetes naming rules;
//   - references hold: selectors match their workloads' pod labels, probes and Services use
//     declared container ports, mounted volumes and ConfigMaps exist, the StatefulSet's
//     serviceName is a headless Service, the HPA targets an existing workload whose containers
//     request CPU, PDBs and NetworkPolicies select pods that exist;
//   - core-api specifics: every *.toml in a ConfigMap parses and uses only the sections and
//     keys of core-api's configuration structs (read from core-api/src/config/), RECO__
//     variables have the RECO__SECTION__KEY form and name existing keys,
//     cluster.shard_nodes equals the replicas of the StatefulSet that mounts the config, and
//     routers and shard nodes have scylla.nodes (they refuse to start without it).
//
// With -scylla FILE it checks the ScyllaDB Operator manifest instead (see scylla.go): strict
// decoding, names, sizes, and its agreement with the [scylla] settings of DIR's ConfigMap.
//
// usage: go run . [-scylla FILE] [DIR]   (DIR defaults to .., the deploy/k8s folder)
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/kustomize/api/krusty"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The API groups these manifests may use; anything else is reported as an unknown kind.
var allowedGroups = map[string]bool{"": true, "apps": true, "autoscaling": true, "policy": true, "networking.k8s.io": true}

type object struct {
	where string // file#document
	obj   runtime.Object
}

type checker struct {
	errs []string
}

func (c *checker) fail(where, format string, args ...any) {
	c.errs = append(c.errs, where+": "+fmt.Sprintf(format, args...))
}

func main() {
	scyllaFile := flag.String("scylla", "", "check this ScyllaDB Operator manifest against DIR's core-api config instead")
	flag.Parse()
	dir := ".."
	if flag.NArg() > 0 {
		dir = flag.Arg(0)
	}
	configRsRoot = filepath.Join(dir, "..", "..") // the repository root
	if *scyllaFile != "" {
		checkScylla(*scyllaFile, dir)
		return
	}
	c := &checker{}
	files, err := yamlFiles(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})

	var objs []object
	for _, f := range files {
		if f == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			c.fail(f, "%v", err)
			continue
		}
		docs, err := splitDocuments(data)
		if err != nil {
			c.fail(f, "%v", err)
			continue
		}
		for i, doc := range docs {
			where := fmt.Sprintf("%s#%d", f, i+1)
			if o := decode(c, strict, where, doc); o != nil {
				objs = append(objs, object{where, o})
			}
		}
	}
	fmt.Printf("decoded %d objects from %d files strictly\n", len(objs), len(files)-1)

	checkKustomization(c, strict, dir, files, len(objs))
	checkNames(c, objs)
	checkReferences(c, objs)
	checkCoreConfig(c, objs)

	if len(c.errs) > 0 {
		for _, e := range c.errs {
			fmt.Fprintln(os.Stderr, "error:", e)
		}
		fmt.Fprintf(os.Stderr, "%d problem(s) in %s\n", len(c.errs), dir)
		os.Exit(1)
	}
	fmt.Println("names, labels, selectors, ports, volumes and references are consistent")
}

func yamlFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			files = append(files, e.Name())
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("no YAML files in %s", dir)
	}
	return files, nil
}

// splitDocuments returns the non-empty documents of a multi-document YAML file.
func splitDocuments(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var v any
		if err := yaml.Unmarshal(doc, &v); err != nil {
			return nil, err
		}
		if v != nil {
			docs = append(docs, doc)
		}
	}
}

func decode(c *checker, strict runtime.Decoder, where string, doc []byte) runtime.Object {
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		c.fail(where, "%v", err)
		return nil
	}
	gv, err := runtimeGroup(meta.APIVersion)
	if err != nil || meta.Kind == "" {
		c.fail(where, "missing or invalid apiVersion/kind (%q, %q)", meta.APIVersion, meta.Kind)
		return nil
	}
	if !allowedGroups[gv] {
		c.fail(where, "%s %s: API group %q is not one these manifests are checked against", meta.APIVersion, meta.Kind, gv)
		return nil
	}
	obj, _, err := strict.Decode(doc, nil, nil)
	if err != nil {
		c.fail(where, "%s: %v", meta.Kind, err)
		return nil
	}
	return obj
}

func runtimeGroup(apiVersion string) (string, error) {
	if apiVersion == "" {
		return "", errors.New("empty apiVersion")
	}
	if i := strings.Index(apiVersion, "/"); i >= 0 {
		return apiVersion[:i], nil
	}
	return "", nil
}

func checkKustomization(c *checker, strict runtime.Decoder, dir string, files []string, objCount int) {
	const name = "kustomization.yaml"
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		c.fail(name, "%v", err)
		return
	}
	var k ktypes.Kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		c.fail(name, "%v", err)
		return
	}
	if k.APIVersion != ktypes.KustomizationVersion || k.Kind != ktypes.KustomizationKind {
		c.fail(name, "apiVersion/kind must be %s/%s", ktypes.KustomizationVersion, ktypes.KustomizationKind)
	}
	before := len(c.errs)
	listed := map[string]bool{}
	for _, r := range k.Resources {
		if listed[r] {
			c.fail(name, "resource %s listed twice", r)
		}
		listed[r] = true
		if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
			c.fail(name, "resource %s: %v", r, err)
		}
	}
	for _, f := range files {
		if f != name && !listed[f] {
			c.fail(name, "%s is not listed under resources", f)
		}
	}
	if len(c.errs) == before {
		fmt.Printf("%s: strict decode ok, lists exactly the %d manifest files\n", name, len(files)-1)
	}

	abs, err := filepath.Abs(dir)
	if err != nil {
		c.fail(name, "%v", err)
		return
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		c.fail(name, "kustomize build: %v", err)
		return
	}
	built := 0
	for _, r := range resMap.Resources() {
		out, err := r.AsYAML()
		if err != nil {
			c.fail(name, "kustomize build: %v", err)
			continue
		}
		where := fmt.Sprintf("kustomize build: %s %s", r.GetKind(), r.GetName())
		if decode(c, strict, where, out) != nil {
			built++
		}
	}
	if built != objCount {
		c.fail(name, "kustomize build produced %d valid objects, the files hold %d", built, objCount)
	}
	fmt.Printf("kustomize build: %d objects decode strictly\n", built)
}

func checkNames(c *checker, objs []object) {
	seen := map[string]string{}
	for _, o := range objs {
		m, err := metaOf(o.obj)
		if err != nil {
			c.fail(o.where, "%v", err)
			continue
		}
		kind := o.obj.GetObjectKind().GroupVersionKind().Kind
		key := kind + "/" + m.GetNamespace() + "/" + m.GetName()
		if prev, ok := seen[key]; ok {
			c.fail(o.where, "%s %s defined twice (also %s)", kind, m.GetName(), prev)
		}
		seen[key] = o.where
		nameErrs := validation.IsDNS1123Subdomain(m.GetName())
		if kind == "Service" || kind == "Namespace" || kind == "StatefulSet" {
			nameErrs = validation.IsDNS1123Label(m.GetName())
		}
		for _, e := range nameErrs {
			c.fail(o.where, "name %q: %s", m.GetName(), e)
		}
		if kind != "Namespace" && m.GetNamespace() == "" {
			c.fail(o.where, "%s %s has no namespace", kind, m.GetName())
		}
		checkLabels(c, o.where, m.GetLabels())
		for k := range m.GetAnnotations() {
			for _, e := range validation.IsQualifiedName(k) {
				c.fail(o.where, "annotation %q: %s", k, e)
			}
		}
		if spec := podSpecOf(o.obj); spec != nil {
			for _, ctr := range spec.Containers {
				for _, e := range validation.IsDNS1123Label(ctr.Name) {
					c.fail(o.where, "container %q: %s", ctr.Name, e)
				}
				for _, p := range ctr.Ports {
					if p.Name != "" {
						for _, e := range validation.IsValidPortName(p.Name) {
							c.fail(o.where, "port name %q: %s", p.Name, e)
						}
					}
				}
			}
			checkLabels(c, o.where+" pod template", podLabelsOf(o.obj))
		}
	}
}

func checkLabels(c *checker, where string, l map[string]string) {
	for k, v := range l {
		for _, e := range validation.IsQualifiedName(k) {
			c.fail(where, "label key %q: %s", k, e)
		}
		for _, e := range validation.IsValidLabelValue(v) {
			c.fail(where, "label %s=%q: %s", k, v, e)
		}
	}
}

func metaOf(o runtime.Object) (metav1.Object, error) {
	m, ok := o.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", o)
	}
	return m, nil
}

func podSpecOf(o runtime.Object) *corev1.PodSpec {
	switch w := o.(type) {
	case *appsv1.Deployment:
		return &w.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &w.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return &w.Spec.Template.Spec
	}
	return nil
}

func podLabelsOf(o runtime.Object) map[string]string {
	switch w := o.(type) {
	case *appsv1.Deployment:
		return w.Spec.Template.Labels
	case *appsv1.StatefulSet:
		return w.Spec.Template.Labels
	case *appsv1.DaemonSet:
		return w.Spec.Template.Labels
	}
	return nil
}

type workload struct {
	object
	kind, name, namespace string
	podLabels             map[string]string
	spec                  *corev1.PodSpec
}

func checkReferences(c *checker, objs []object) {
	var workloads []workload
	services := map[string]*corev1.Service{}
	configMaps := map[string]*corev1.ConfigMap{}
	namespaces := map[string]bool{}
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.Namespace:
			namespaces[v.Name] = true
		case *corev1.Service:
			services[v.Namespace+"/"+v.Name] = v
		case *corev1.ConfigMap:
			configMaps[v.Namespace+"/"+v.Name] = v
		}
		if spec := podSpecOf(o.obj); spec != nil {
			m, _ := metaOf(o.obj)
			workloads = append(workloads, workload{o, o.obj.GetObjectKind().GroupVersionKind().Kind,
				m.GetName(), m.GetNamespace(), podLabelsOf(o.obj), spec})
		}
	}
	for _, o := range objs {
		if m, err := metaOf(o.obj); err == nil && m.GetNamespace() != "" && !namespaces[m.GetNamespace()] {
			c.fail(o.where, "namespace %q is not defined in these manifests", m.GetNamespace())
		}
	}
	selecting := func(ns string, sel labels.Selector) []workload {
		var out []workload
		for _, w := range workloads {
			if w.namespace == ns && sel.Matches(labels.Set(w.podLabels)) {
				out = append(out, w)
			}
		}
		return out
	}
	labelSelector := func(where string, ls *metav1.LabelSelector) labels.Selector {
		if ls == nil {
			c.fail(where, "no selector")
			return labels.Nothing()
		}
		s, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			c.fail(where, "selector: %v", err)
			return labels.Nothing()
		}
		return s
	}

	for _, w := range workloads {
		checkWorkload(c, w, configMaps, services)
		var sel *metav1.LabelSelector
		switch v := w.obj.(type) {
		case *appsv1.Deployment:
			sel = v.Spec.Selector
		case *appsv1.StatefulSet:
			sel = v.Spec.Selector
		case *appsv1.DaemonSet:
			sel = v.Spec.Selector
		}
		if s := labelSelector(w.where, sel); !s.Matches(labels.Set(w.podLabels)) {
			c.fail(w.where, "selector %s does not match the pod template labels %v", s, w.podLabels)
		}
		// Selectors of two workloads must not overlap.
		for _, other := range workloads {
			if other.where != w.where && other.namespace == w.namespace && labelSelector(w.where, sel).Matches(labels.Set(other.podLabels)) {
				c.fail(w.where, "selector also matches the pods of %s %s", other.kind, other.name)
			}
		}
	}

	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.Service:
			if len(v.Spec.Selector) == 0 {
				c.fail(o.where, "Service %s has no selector", v.Name)
				continue
			}
			targets := selecting(v.Namespace, labels.SelectorFromSet(v.Spec.Selector))
			if len(targets) == 0 {
				c.fail(o.where, "Service %s selects no pods of these manifests", v.Name)
			}
			for _, p := range v.Spec.Ports {
				tp := p.TargetPort
				if tp.Type == intstr.Int && tp.IntVal == 0 {
					tp = intstr.FromInt32(p.Port)
				}
				for _, t := range targets {
					if !hasPort(t.spec, tp) {
						c.fail(o.where, "Service %s port %s: target port %s is not a container port of %s %s", v.Name, p.Name, tp.String(), t.kind, t.name)
					}
				}
			}
		case *policyv1.PodDisruptionBudget:
			if len(selecting(v.Namespace, labelSelector(o.where, v.Spec.Selector))) != 1 {
				c.fail(o.where, "PodDisruptionBudget %s must select the pods of exactly one workload", v.Name)
			}
			if (v.Spec.MinAvailable == nil) == (v.Spec.MaxUnavailable == nil) {
				c.fail(o.where, "PodDisruptionBudget %s needs exactly one of minAvailable and maxUnavailable", v.Name)
			}
		case *networkingv1.NetworkPolicy:
			if len(selecting(v.Namespace, labelSelector(o.where, &v.Spec.PodSelector))) == 0 {
				c.fail(o.where, "NetworkPolicy %s selects no pods of these manifests", v.Name)
			}
			targets := selecting(v.Namespace, labelSelector(o.where, &v.Spec.PodSelector))
			for _, rule := range v.Spec.Ingress {
				for _, peer := range rule.From {
					if peer.PodSelector != nil && peer.NamespaceSelector == nil &&
						len(selecting(v.Namespace, labelSelector(o.where, peer.PodSelector))) == 0 {
						c.fail(o.where, "NetworkPolicy %s: peer %v selects no pods of these manifests", v.Name, peer.PodSelector.MatchLabels)
					}
				}
				for _, p := range rule.Ports {
					if p.Port == nil {
						continue
					}
					for _, t := range targets {
						if !hasPort(t.spec, *p.Port) {
							c.fail(o.where, "NetworkPolicy %s: port %s is not a container port of %s %s", v.Name, p.Port.String(), t.kind, t.name)
						}
					}
				}
			}
			// Egress to pods of these manifests: the peer selects some, and the ports are theirs.
			for _, rule := range v.Spec.Egress {
				for _, peer := range rule.To {
					if peer.PodSelector == nil || peer.NamespaceSelector != nil {
						continue
					}
					dests := selecting(v.Namespace, labelSelector(o.where, peer.PodSelector))
					if len(dests) == 0 {
						c.fail(o.where, "NetworkPolicy %s: egress peer %v selects no pods of these manifests", v.Name, peer.PodSelector.MatchLabels)
					}
					for _, p := range rule.Ports {
						if p.Port == nil {
							continue
						}
						for _, d := range dests {
							if !hasPort(d.spec, *p.Port) {
								c.fail(o.where, "NetworkPolicy %s: egress port %s is not a container port of %s %s", v.Name, p.Port.String(), d.kind, d.name)
							}
						}
					}
				}
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			ref := v.Spec.ScaleTargetRef
			var target *workload
			for i := range workloads {
				w := &workloads[i]
				if w.kind == ref.Kind && w.name == ref.Name && w.namespace == v.Namespace {
					target = w
				}
			}
			if target == nil {
				c.fail(o.where, "HorizontalPodAutoscaler %s: %s %s not found", v.Name, ref.Kind, ref.Name)
				continue
			}
			if ref.APIVersion != "apps/v1" {
				c.fail(o.where, "HorizontalPodAutoscaler %s: scaleTargetRef.apiVersion %q, want apps/v1", v.Name, ref.APIVersion)
			}
			if v.Spec.MinReplicas == nil || *v.Spec.MinReplicas < 1 || *v.Spec.MinReplicas > v.Spec.MaxReplicas {
				c.fail(o.where, "HorizontalPodAutoscaler %s: need 1 <= minReplicas <= maxReplicas", v.Name)
			}
			if d, ok := target.obj.(*appsv1.Deployment); ok && d.Spec.Replicas != nil {
				c.fail(o.where, "Deployment %s sets replicas although HorizontalPodAutoscaler %s owns the count (every apply would reset it)", d.Name, v.Name)
			}
			for _, m := range v.Spec.Metrics {
				if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil {
					for _, ctr := range target.spec.Containers {
						if _, ok := ctr.Resources.Requests[m.Resource.Name]; !ok {
							c.fail(o.where, "HorizontalPodAutoscaler %s scales on %s, but container %s of %s requests none", v.Name, m.Resource.Name, ctr.Name, target.name)
						}
					}
				}
			}
		}
	}
}

func hasPort(spec *corev1.PodSpec, p intstr.IntOrString) bool {
	for _, ctr := range spec.Containers {
		for _, cp := range ctr.Ports {
			if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
				return true
			}
		}
	}
	return false
}

func checkWorkload(c *checker, w workload, configMaps map[string]*corev1.ConfigMap, services map[string]*corev1.Service) {
	volumes := map[string]corev1.Volume{}
	for _, v := range w.spec.Volumes {
		volumes[v.Name] = v
		if v.ConfigMap != nil && (v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional) {
			if configMaps[w.namespace+"/"+v.ConfigMap.Name] == nil {
				c.fail(w.where, "volume %s: ConfigMap %s is not defined in these manifests", v.Name, v.ConfigMap.Name)
			}
		}
	}
	claims := map[string]bool{}
	if ss, ok := w.obj.(*appsv1.StatefulSet); ok {
		for _, t := range ss.Spec.VolumeClaimTemplates {
			claims[t.Name] = true
			if _, ok := t.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
				c.fail(w.where, "volumeClaimTemplate %s requests no storage", t.Name)
			}
		}
		svc := services[w.namespace+"/"+ss.Spec.ServiceName]
		if svc == nil {
			c.fail(w.where, "serviceName %q: no such Service", ss.Spec.ServiceName)
		} else if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			c.fail(w.where, "serviceName %q must be a headless Service (clusterIP: None)", ss.Spec.ServiceName)
		}
	}
	for _, ctr := range w.spec.Containers {
		where := fmt.Sprintf("%s container %s", w.where, ctr.Name)
		if ctr.Image == "" {
			c.fail(where, "no image")
		}
		for _, m := range ctr.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok && !claims[m.Name] {
				c.fail(where, "volumeMount %s: no such volume or volumeClaimTemplate", m.Name)
			}
		}
		for _, probe := range []*corev1.Probe{ctr.ReadinessProbe, ctr.LivenessProbe, ctr.StartupProbe} {
			if probe != nil && probe.HTTPGet != nil && !hasPort(&corev1.PodSpec{Containers: []corev1.Container{ctr}}, probe.HTTPGet.Port) {
				c.fail(where, "probe %s: port %s is not a container port", probe.HTTPGet.Path, probe.HTTPGet.Port.String())
			}
		}
		if ctr.ReadinessProbe == nil || ctr.LivenessProbe == nil {
			c.fail(where, "needs a readiness and a liveness probe")
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := ctr.Resources.Requests[r]; !ok {
				c.fail(where, "no %s request", r)
			}
		}
		if req, ok := ctr.Resources.Requests[corev1.ResourceMemory]; ok {
			if lim, ok := ctr.Resources.Limits[corev1.ResourceMemory]; ok && lim.Cmp(req) < 0 {
				c.fail(where, "memory limit %s below its request %s", lim.String(), req.String())
			}
		}
		for _, e := range ctr.Env {
			if strings.HasPrefix(e.Name, "RECO__") {
				parts := strings.Split(strings.ToLower(strings.TrimPrefix(e.Name, "RECO__")), "__")
				if len(parts) != 2 {
					c.fail(where, "env %s: core-api reads RECO__SECTION__KEY", e.Name)
				} else if schema, path := configSchema(); schema != nil && !schema[parts[0]][parts[1]] {
					c.fail(where, "env %s: %s.%s is not a key of core-api's configuration (%s)", e.Name, parts[0], parts[1], path)
				}
			}
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				ref := e.ValueFrom.ConfigMapKeyRef
				cm := configMaps[w.namespace+"/"+ref.Name]
				if (ref.Optional == nil || !*ref.Optional) && (cm == nil || cm.Data[ref.Key] == "") {
					c.fail(where, "env %s: ConfigMap key %s/%s not defined", e.Name, ref.Name, ref.Key)
				}
			}
		}
	}
}

// configSchema reads core-api's configuration structs from the files of core-api/src/config/
// (one per group of sections): the sections of `struct Config` and the fields of each
// section's struct (all of them deny_unknown_fields). Nil when the folder is not there.
func configSchema() (map[string]map[string]bool, string) {
	path := filepath.Join(configRsRoot, "core-api", "src", "config")
	files, err := filepath.Glob(filepath.Join(path, "*.rs"))
	if err != nil || len(files) == 0 {
		return nil, path
	}
	var all bytes.Buffer
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			return nil, file
		}
		all.Write(text)
		all.WriteByte('\n')
	}
	src := all.Bytes()
	structs := map[string]map[string]bool{}
	for _, m := range structRe.FindAllStringSubmatch(string(src), -1) {
		fields := map[string]bool{}
		for _, f := range fieldRe.FindAllStringSubmatch(m[2], -1) {
			fields[f[1]] = true
		}
		structs[m[1]] = fields
	}
	schema := map[string]map[string]bool{}
	top := regexp.MustCompile(`(?m)^pub struct Config \{([^}]*)\n\}`).FindStringSubmatch(string(src))
	if top == nil {
		return nil, path
	}
	for _, f := range regexp.MustCompile(`(?m)^\s*pub (\w+): (\w+),`).FindAllStringSubmatch(top[1], -1) {
		schema[f[1]] = structs[f[2]]
	}
	return schema, path
}

var (
	configRsRoot string
	structRe     = regexp.MustCompile(`(?ms)^pub struct (\w+) \{\n(.*?)^\}`)
	fieldRe      = regexp.MustCompile(`(?m)^\s*pub (\w+):`)
)

// checkConfigKeys rejects sections and keys core-api does not know (it refuses them at start).
func checkConfigKeys(c *checker, where, name, text string) {
	schema, path := configSchema()
	if schema == nil {
		fmt.Printf("ConfigMap %s: key names not checked (%s not readable)\n", name, path)
		return
	}
	var doc map[string]any
	if err := toml.Unmarshal([]byte(text), &doc); err != nil {
		return // reported by the caller
	}
	before := len(c.errs)
	for section, v := range doc {
		fields, ok := schema[section]
		if !ok {
			c.fail(where, "%s: section [%s] is not one of core-api's (%s)", name, section, path)
			continue
		}
		table, ok := v.(map[string]any)
		if !ok {
			c.fail(where, "%s: %s must be a table", name, section)
			continue
		}
		for key := range table {
			if !fields[key] {
				c.fail(where, "%s: %s.%s is not a key of core-api's configuration (%s)", name, section, key, path)
			}
		}
	}
	if len(c.errs) == before {
		fmt.Printf("ConfigMap %s: every section and key exists in %s\n", name, path)
	}
}

// checkCoreConfig parses core-api's TOML in ConfigMaps and ties cluster.shard_nodes to the
// StatefulSet that mounts it.
func checkCoreConfig(c *checker, objs []object) {
	for _, o := range objs {
		cm, ok := o.obj.(*corev1.ConfigMap)
		if !ok {
			continue
		}
		for key, text := range cm.Data {
			if !strings.HasSuffix(key, ".toml") {
				continue
			}
			var cfg struct {
				Index struct {
					Shards int `toml:"shards"`
				} `toml:"index"`
				Cluster struct {
					Role        string `toml:"role"`
					ShardNodes  int    `toml:"shard_nodes"`
					Replication int    `toml:"replication"`
				} `toml:"cluster"`
				Scylla struct {
					Nodes string `toml:"nodes"`
				} `toml:"scylla"`
			}
			if err := toml.Unmarshal([]byte(text), &cfg); err != nil {
				c.fail(o.where, "ConfigMap %s key %s: %v", cm.Name, key, err)
				continue
			}
			checkConfigKeys(c, o.where, cm.Name+"/"+key, text)
			fmt.Printf("ConfigMap %s/%s: TOML parses (index.shards=%d, cluster.shard_nodes=%d, cluster.replication=%d)\n",
				cm.Name, key, cfg.Index.Shards, cfg.Cluster.ShardNodes, cfg.Cluster.Replication)
			// Routers and shard nodes keep their data in ScyllaDB and refuse to start without it.
			clustered := 0
			for _, w := range objs {
				spec := podSpecOf(w.obj)
				m, _ := metaOf(w.obj)
				if spec == nil || m.GetNamespace() != cm.Namespace || !mountsConfigMap(spec, cm.Name) {
					continue
				}
				for _, ctr := range spec.Containers {
					role, nodes := cfg.Cluster.Role, cfg.Scylla.Nodes
					for _, e := range ctr.Env {
						switch {
						case e.Name == "RECO__CLUSTER__ROLE" && e.ValueFrom == nil:
							role = e.Value
						case e.Name == "RECO__SCYLLA__NODES" && (e.Value != "" || e.ValueFrom != nil):
							nodes = "(from the environment)"
						}
					}
					if role != "router" && role != "shard" {
						continue
					}
					clustered++
					if strings.TrimSpace(nodes) == "" {
						c.fail(w.where, "container %s runs role %s without scylla.nodes (ConfigMap %s or RECO__SCYLLA__NODES): it would refuse to start", ctr.Name, role, cm.Name)
					}
				}
			}
			if clustered > 0 && strings.TrimSpace(cfg.Scylla.Nodes) != "" {
				fmt.Printf("ConfigMap %s/%s: scylla.nodes = %q for the %d router/shard container(s) that mount it\n", cm.Name, key, cfg.Scylla.Nodes, clustered)
			}
			if cfg.Cluster.ShardNodes == 0 {
				continue
			}
			if cfg.Cluster.Replication > cfg.Cluster.ShardNodes {
				c.fail(o.where, "cluster.replication %d exceeds cluster.shard_nodes %d", cfg.Cluster.Replication, cfg.Cluster.ShardNodes)
			}
			for _, w := range objs {
				ss, ok := w.obj.(*appsv1.StatefulSet)
				if !ok || ss.Namespace != cm.Namespace || !mountsConfigMap(&ss.Spec.Template.Spec, cm.Name) {
					continue
				}
				if ss.Spec.Replicas == nil || int(*ss.Spec.Replicas) != cfg.Cluster.ShardNodes {
					c.fail(w.where, "StatefulSet %s replicas must equal cluster.shard_nodes (%d) of ConfigMap %s", ss.Name, cfg.Cluster.ShardNodes, cm.Name)
				}
			}
		}
	}
	for _, o := range objs {
		pdb, ok := o.obj.(*policyv1.PodDisruptionBudget)
		if ok && pdb.Spec.MaxUnavailable != nil && pdb.Spec.MaxUnavailable.Type == intstr.Int && pdb.Spec.MaxUnavailable.IntVal < 1 {
			c.fail(o.where, "PodDisruptionBudget %s: maxUnavailable < 1 blocks every drain", pdb.Name)
		}
	}
}

func mountsConfigMap(spec *corev1.PodSpec, name string) bool {
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == name {
			return true
		}
	}
	return false
}
