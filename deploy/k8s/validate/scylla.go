package main

// The -scylla mode: checks the ScyllaDB Operator manifest (deploy/scylla/scylla-cluster.yaml)
// offline and against core-api's [scylla] settings in the ConfigMap of deploy/k8s.
//
// The ScyllaCluster is decoded strictly into scyllaCluster below, which mirrors the fields of
// the operator's scylla.scylladb.com/v1 API (pkg/api/scylla/v1/types_cluster.go of
// scylladb/scylla-operator v1.21) that these manifests use: a misspelt or unknown field is an
// error. A field the operator has but the mirror lacks is reported too; add it to the mirror
// after checking the operator's API reference. Other documents (the Namespace) are decoded
// strictly with the Kubernetes API types.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

const scyllaAPIVersion = "scylla.scylladb.com/v1"

type scyllaCluster struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Version                      string                        `json:"version"`
		Repository                   string                        `json:"repository,omitempty"`
		AgentVersion                 string                        `json:"agentVersion,omitempty"`
		AgentRepository              string                        `json:"agentRepository,omitempty"`
		DeveloperMode                bool                          `json:"developerMode,omitempty"`
		AutomaticOrphanedNodeCleanup bool                          `json:"automaticOrphanedNodeCleanup,omitempty"`
		Sysctls                      []string                      `json:"sysctls,omitempty"`
		ScyllaArgs                   string                        `json:"scyllaArgs,omitempty"`
		ForceRedeploymentReason      string                        `json:"forceRedeploymentReason,omitempty"`
		ImagePullSecrets             []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
		Datacenter                   struct {
			Name  string       `json:"name"`
			Racks []scyllaRack `json:"racks"`
		} `json:"datacenter"`
	} `json:"spec"`
}

type scyllaRack struct {
	Name    string `json:"name"`
	Members int32  `json:"members"`
	Storage struct {
		Capacity         string  `json:"capacity"`
		StorageClassName *string `json:"storageClassName,omitempty"`
	} `json:"storage"`
	Placement *struct {
		NodeAffinity    *corev1.NodeAffinity    `json:"nodeAffinity,omitempty"`
		PodAffinity     *corev1.PodAffinity     `json:"podAffinity,omitempty"`
		PodAntiAffinity *corev1.PodAntiAffinity `json:"podAntiAffinity,omitempty"`
		Tolerations     []corev1.Toleration     `json:"tolerations,omitempty"`
	} `json:"placement,omitempty"`
	Resources         corev1.ResourceRequirements `json:"resources"`
	AgentResources    corev1.ResourceRequirements `json:"agentResources,omitempty"`
	ScyllaConfig      string                      `json:"scyllaConfig,omitempty"`
	ScyllaAgentConfig string                      `json:"scyllaAgentConfig,omitempty"`
}

// scyllaSettings is core-api's [scylla] section as the ConfigMap of deploy/k8s sets it.
type scyllaSettings struct {
	Nodes       string `toml:"nodes"`
	Keyspace    string `toml:"keyspace"`
	Replication string `toml:"replication"`
	Consistency string `toml:"consistency"`
}

func checkScylla(file, k8sDir string) {
	c := &checker{}
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	name := filepath.Base(file)
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	docs, err := splitDocuments(data)
	if err != nil {
		c.fail(name, "%v", err)
	}
	var clusters []scyllaCluster
	namespaces := map[string]bool{}
	for i, doc := range docs {
		where := fmt.Sprintf("%s#%d", name, i+1)
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			c.fail(where, "%v", err)
			continue
		}
		if meta.APIVersion == scyllaAPIVersion && meta.Kind == "ScyllaCluster" {
			var sc scyllaCluster
			if err := yaml.UnmarshalStrict(doc, &sc); err != nil {
				c.fail(where, "ScyllaCluster: %v (fields are checked against a mirror of the operator's %s API in deploy/k8s/validate/scylla.go)", err, scyllaAPIVersion)
				continue
			}
			clusters = append(clusters, sc)
			continue
		}
		obj := decode(c, strict, where, doc)
		if ns, ok := obj.(*corev1.Namespace); ok {
			namespaces[ns.Name] = true
			checkLabels(c, where, ns.Labels)
		} else if obj != nil {
			c.fail(where, "%s %s: only a Namespace and the ScyllaCluster are expected here", meta.APIVersion, meta.Kind)
		}
	}
	fmt.Printf("%s: %d documents decode strictly (the ScyllaCluster against the operator's %s fields)\n", name, len(docs), scyllaAPIVersion)
	if len(clusters) != 1 {
		c.fail(name, "expected exactly one %s ScyllaCluster, found %d", scyllaAPIVersion, len(clusters))
		report(c, file)
		return
	}
	sc := clusters[0]
	where := name + " ScyllaCluster " + sc.Metadata.Name
	for _, e := range validation.IsDNS1123Label(sc.Metadata.Name) {
		c.fail(where, "name: %s", e)
	}
	checkLabels(c, where, sc.Metadata.Labels)
	if sc.Metadata.Namespace == "" || !namespaces[sc.Metadata.Namespace] {
		c.fail(where, "namespace %q is not defined in this file", sc.Metadata.Namespace)
	}
	if !regexp.MustCompile(`^\d+\.\d+\.\d+`).MatchString(sc.Spec.Version) {
		c.fail(where, "spec.version %q: pin a ScyllaDB release (X.Y.Z)", sc.Spec.Version)
	}
	if sc.Spec.AgentVersion == "" || sc.Spec.AgentVersion == "latest" {
		c.fail(where, "spec.agentVersion %q: pin the Manager agent's version", sc.Spec.AgentVersion)
	}
	if sc.Spec.DeveloperMode {
		c.fail(where, "spec.developerMode is for development machines, not this cluster")
	}
	dc := sc.Spec.Datacenter
	for _, e := range validation.IsDNS1123Label(dc.Name) {
		c.fail(where, "spec.datacenter.name %q: %s", dc.Name, e)
	}
	members := int32(0)
	racks := map[string]bool{}
	for i, r := range dc.Racks {
		rw := fmt.Sprintf("%s rack %d (%s)", where, i, r.Name)
		for _, e := range validation.IsDNS1123Label(r.Name) {
			c.fail(rw, "name: %s", e)
		}
		if racks[r.Name] {
			c.fail(rw, "rack name used twice")
		}
		racks[r.Name] = true
		if r.Members < 1 {
			c.fail(rw, "members %d: a rack needs at least one node", r.Members)
		}
		members += r.Members
		if q, err := resource.ParseQuantity(r.Storage.Capacity); err != nil || q.Sign() <= 0 {
			c.fail(rw, "storage.capacity %q is not a positive quantity", r.Storage.Capacity)
		}
		checkGuaranteed(c, rw+" resources", r.Resources)
		checkGuaranteed(c, rw+" agentResources", r.AgentResources)
		if r.Placement != nil && r.Placement.PodAntiAffinity != nil {
			// The labels the operator gives this rack's ScyllaDB pods and its cleanup Job pods
			// (which reuse the rack's placement): pkg/naming of scylla-operator.
			node := labels.Set{"scylla/cluster": sc.Metadata.Name, "scylla/rack": r.Name,
				"scylla-operator.scylladb.com/pod-type": "scylladb-node"}
			job := labels.Set{"scylla/cluster": sc.Metadata.Name,
				"scylla-operator.scylladb.com/pod-type": "cleanup-job"}
			for _, term := range r.Placement.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
				if term.TopologyKey == "" {
					c.fail(rw, "podAntiAffinity term without topologyKey")
				}
				s, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
				if err != nil {
					c.fail(rw, "podAntiAffinity selector: %v", err)
					continue
				}
				if s.Matches(job) {
					c.fail(rw, "required podAntiAffinity %s also selects the operator's cleanup Job pods, which could then schedule nowhere: select pod-type scylladb-node only", s)
				}
				if s.Matches(node) && r.Members > 1 {
					c.fail(rw, "required podAntiAffinity %s selects the rack's own pods: its %d members need %d distinct %s domains", s, r.Members, r.Members, term.TopologyKey)
				}
			}
		}
	}
	if len(dc.Racks) == 0 {
		c.fail(where, "spec.datacenter.racks is empty")
	}
	if members < 3 {
		c.fail(where, "%d ScyllaDB nodes in all: at least 3 are needed to survive one node's loss", members)
	}
	fmt.Printf("ScyllaCluster %s/%s: ScyllaDB %s, data centre %s, %d racks, %d nodes; storage, and requests = limits on every container\n",
		sc.Metadata.Namespace, sc.Metadata.Name, sc.Spec.Version, dc.Name, len(dc.Racks), members)

	checkScyllaAgainstCore(c, where, sc, len(dc.Racks), int(members), k8sDir)
	report(c, file)
}

// checkGuaranteed: CPU and memory requested, with limits equal to the requests (ScyllaDB sizes
// its memory from the limit; Guaranteed QoS is what the operator's production checklist asks).
func checkGuaranteed(c *checker, where string, r corev1.ResourceRequirements) {
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, ok := r.Requests[name]
		if !ok {
			c.fail(where, "no %s request", name)
			continue
		}
		if lim, ok := r.Limits[name]; !ok || lim.Cmp(req) != 0 {
			c.fail(where, "%s limit must equal its request %s (Guaranteed QoS)", name, req.String())
		}
	}
}

// checkScyllaAgainstCore ties core-api's [scylla] settings in the ConfigMap of deploy/k8s to
// the ScyllaCluster: scylla.nodes names its client Service, the keyspace replication names its
// data centre with a replication factor the nodes can hold, and scylla.consistency still
// reaches its replica count with one node down.
func checkScyllaAgainstCore(c *checker, where string, sc scyllaCluster, rackCount, members int, k8sDir string) {
	settings, cmWhere := coreScyllaSettings(c, k8sDir)
	if settings == nil {
		return
	}
	if settings.Nodes == "" {
		c.fail(cmWhere, "scylla.nodes is empty: routers and shard nodes refuse to start without it")
		return
	}
	service := fmt.Sprintf("%s-client.%s.svc", sc.Metadata.Name, sc.Metadata.Namespace)
	inCluster := false
	for _, node := range strings.Split(settings.Nodes, ",") {
		host, port, err := net.SplitHostPort(strings.TrimSpace(node))
		if err != nil {
			c.fail(cmWhere, "scylla.nodes %q: %v", node, err)
			continue
		}
		if host == service || host == service+".cluster.local" {
			inCluster = true
			if port != "9042" {
				c.fail(cmWhere, "scylla.nodes %q: the client Service serves CQL on 9042", node)
			}
		}
	}
	if !inCluster {
		fmt.Printf("scylla.nodes %q does not name %s: an external ScyllaDB cluster, not checked against this ScyllaCluster\n", settings.Nodes, service)
		return
	}
	class, factors, err := parseReplication(settings.Replication)
	if err != nil {
		c.fail(cmWhere, "scylla.replication %q: %v", settings.Replication, err)
		return
	}
	if class != "NetworkTopologyStrategy" && class != "org.apache.cassandra.locator.NetworkTopologyStrategy" {
		c.fail(cmWhere, "scylla.replication: class %q; use NetworkTopologyStrategy with data centre %s", class, sc.Spec.Datacenter.Name)
		return
	}
	rf, ok := factors[sc.Spec.Datacenter.Name]
	if !ok {
		rf, ok = factors["replication_factor"]
	}
	var names []string
	for dc := range factors {
		names = append(names, dc)
	}
	sort.Strings(names)
	if !ok || len(factors) != 1 {
		c.fail(cmWhere, "scylla.replication names data centres %v; the ScyllaCluster's is %s (spec.datacenter.name)", names, sc.Spec.Datacenter.Name)
		return
	}
	if rf > members {
		c.fail(cmWhere, "scylla.replication: replication factor %d but only %d ScyllaDB nodes", rf, members)
	}
	if rackCount > 1 && rackCount < rf {
		c.fail(where, "%d racks for replication factor %d: use one rack, or at least as many racks as replicas", rackCount, rf)
	}
	needed, err := replicasNeeded(settings.Consistency, rf)
	if err != nil {
		c.fail(cmWhere, "scylla.consistency: %v", err)
		return
	}
	if rf-needed < 1 {
		c.fail(cmWhere, "scylla.consistency %s needs %d of %d replicas: one ScyllaDB node down would stop reads and writes", settings.Consistency, needed, rf)
		return
	}
	fmt.Printf("%s: scylla.nodes is the client Service %s; keyspace %s replicated %d times in data centre %s; %s needs %d of %d replicas, so %d ScyllaDB node(s) may be down\n",
		cmWhere, service, settings.Keyspace, rf, sc.Spec.Datacenter.Name, settings.Consistency, needed, rf, rf-needed)
}

// coreScyllaSettings reads [scylla] from the core-api TOML of the ConfigMaps in dir.
func coreScyllaSettings(c *checker, dir string) (*scyllaSettings, string) {
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	files, err := yamlFiles(dir)
	if err != nil {
		c.fail(dir, "%v", err)
		return nil, ""
	}
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
			cm, ok := decode(c, strict, fmt.Sprintf("%s#%d", f, i+1), doc).(*corev1.ConfigMap)
			if !ok {
				continue
			}
			for key, text := range cm.Data {
				if !strings.HasSuffix(key, ".toml") {
					continue
				}
				var cfg struct {
					Scylla scyllaSettings `toml:"scylla"`
				}
				where := fmt.Sprintf("ConfigMap %s/%s (%s)", cm.Name, key, f)
				if err := toml.Unmarshal([]byte(text), &cfg); err != nil {
					c.fail(where, "%v", err)
					return nil, where
				}
				// core-api's defaults for what the TOML leaves out (config/backends.rs).
				if cfg.Scylla.Keyspace == "" {
					cfg.Scylla.Keyspace = "semrec"
				}
				if cfg.Scylla.Replication == "" {
					cfg.Scylla.Replication = "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
				}
				if cfg.Scylla.Consistency == "" {
					cfg.Scylla.Consistency = "local_quorum"
				}
				return &cfg.Scylla, where
			}
		}
	}
	c.fail(dir, "no ConfigMap with a core-api *.toml found")
	return nil, ""
}

// parseReplication reads a CQL replication map such as
// {'class': 'NetworkTopologyStrategy', 'dc1': 3}: the class and the replication factors.
func parseReplication(s string) (string, map[string]int, error) {
	body := strings.TrimSpace(s)
	if !strings.HasPrefix(body, "{") || !strings.HasSuffix(body, "}") {
		return "", nil, fmt.Errorf("not a CQL map {...}")
	}
	entry := regexp.MustCompile(`^\s*'([^']*)'\s*:\s*'?([^',]*?)'?\s*$`)
	class := ""
	factors := map[string]int{}
	for _, part := range strings.Split(body[1:len(body)-1], ",") {
		m := entry.FindStringSubmatch(part)
		if m == nil {
			return "", nil, fmt.Errorf("cannot read entry %q", strings.TrimSpace(part))
		}
		if m[1] == "class" {
			class = m[2]
			continue
		}
		n, err := strconv.Atoi(m[2])
		if err != nil || n < 1 {
			return "", nil, fmt.Errorf("replication factor %q of %q is not a positive integer", m[2], m[1])
		}
		factors[m[1]] = n
	}
	if class == "" {
		return "", nil, fmt.Errorf("no 'class'")
	}
	return class, factors, nil
}

// replicasNeeded is how many of rf replicas answer before a statement at this consistency
// level (core-api's names) counts, in the local data centre.
func replicasNeeded(level string, rf int) (int, error) {
	switch level {
	case "one", "local_one":
		return 1, nil
	case "two":
		return 2, nil
	case "three":
		return 3, nil
	case "quorum", "local_quorum", "each_quorum":
		return rf/2 + 1, nil
	case "all":
		return rf, nil
	}
	return 0, fmt.Errorf("unknown consistency %q", level)
}

func report(c *checker, file string) {
	if len(c.errs) > 0 {
		for _, e := range c.errs {
			fmt.Fprintln(os.Stderr, "error:", e)
		}
		fmt.Fprintf(os.Stderr, "%d problem(s) in %s\n", len(c.errs), file)
		os.Exit(1)
	}
	fmt.Printf("%s: checks passed\n", file)
}
