package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Paths are relative to this package's directory, where go test runs.
const (
	repoRoot      = ".."
	composeFile   = "../compose.yaml"
	dockerfile    = "Dockerfile"
	kubernetesDir = "kubernetes"
	baseDir       = "kubernetes/base"
)

// roles maps each long-running role to the port its HTTP server listens on by
// default (api: API + health; workers: health + metrics only).
var roles = map[string]string{"api": "8080", "fanout": "9090", "deliverer": "9090", "indexer": "9090"}

// ---------------------------------------------------------------- compose

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	file, err := filepath.Abs(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: file}},
		Environment: types.Mapping{}, // defaults only, whatever the caller's shell has
	})
	if err != nil {
		t.Fatalf("load compose.yaml: %v", err)
	}
	return p
}

// composeProblems lists what is wrong with a loaded compose project.
func composeProblems(p *types.Project) []string {
	var probs []string
	root, _ := filepath.Abs(repoRoot)
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				probs = append(probs, fmt.Sprintf("%s: depends_on names undefined service %q", name, dep))
				continue
			}
			// Waiting for health on a service that has no healthcheck never ends.
			if d.Condition == types.ServiceConditionHealthy && (target.HealthCheck == nil || target.HealthCheck.Disable) {
				probs = append(probs, fmt.Sprintf("%s: waits for %s to be healthy, but %s has no healthcheck", name, dep, dep))
			}
		}
		if hc := s.HealthCheck; hc != nil && !hc.Disable && !validHealthTest(hc.Test) {
			probs = append(probs, fmt.Sprintf("%s: healthcheck has no test command: %q", name, hc.Test))
		}
	}
	for role, defaultPort := range roles {
		s, ok := p.Services[role]
		if !ok {
			probs = append(probs, fmt.Sprintf("no service for role %s", role))
			continue
		}
		if s.Build == nil {
			probs = append(probs, fmt.Sprintf("%s: not built from deploy/Dockerfile (no build section)", role))
		} else {
			df := s.Build.Dockerfile
			if !filepath.IsAbs(df) {
				df = filepath.Join(s.Build.Context, df)
			}
			if filepath.Clean(s.Build.Context) != root || df != filepath.Join(root, "deploy", "Dockerfile") {
				probs = append(probs, fmt.Sprintf("%s: built from context %q dockerfile %q, want repo root and deploy/Dockerfile", role, s.Build.Context, s.Build.Dockerfile))
			}
		}
		if len(s.Command) == 0 || s.Command[0] != role {
			probs = append(probs, fmt.Sprintf("%s: command %q does not start the %s role", role, s.Command, role))
		}
		port := defaultPort
		if addr := s.Environment["HOOKSTREAM_HTTP_ADDR"]; addr != nil {
			port = portOf(*addr)
		}
		if s.HealthCheck == nil {
			probs = append(probs, fmt.Sprintf("%s: no healthcheck", role))
		} else if u := healthURL(s.HealthCheck.Test); u == nil || u.Path != "/healthz" || u.Port() != port {
			probs = append(probs, fmt.Sprintf("%s: healthcheck %q must run the binary against /healthz on port %s", role, s.HealthCheck.Test, port))
		}
		var shutdownGrace string
		if g := s.Environment["HOOKSTREAM_SHUTDOWN_GRACE"]; g != nil {
			shutdownGrace = *g
		}
		stop := 10 * time.Second // compose's default
		if s.StopGracePeriod != nil {
			stop = time.Duration(*s.StopGracePeriod)
		}
		if p := graceProblem(stop, shutdownGrace); p != "" {
			probs = append(probs, fmt.Sprintf("%s: stop_grace_period %s: %s", role, stop, p))
		}
		if ep := s.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]; ep == nil {
			probs = append(probs, fmt.Sprintf("%s: OTEL_EXPORTER_OTLP_ENDPOINT not set", role))
		} else if u, err := url.Parse(*ep); err != nil || u.Hostname() != "otel-collector" {
			probs = append(probs, fmt.Sprintf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %q does not point at otel-collector", role, *ep))
		}
	}
	return probs
}

func validHealthTest(test types.HealthCheckTest) bool {
	if len(test) < 2 {
		return false
	}
	switch test[0] {
	case "CMD", "CMD-SHELL":
		return strings.TrimSpace(strings.Join(test[1:], "")) != ""
	}
	return false
}

// healthURL returns the --url of a `/hookstream healthcheck` test, or nil
// when the test is not one: distroless has no shell or curl to run anything else.
func healthURL(test types.HealthCheckTest) *url.URL {
	if len(test) < 5 || test[0] != "CMD" || test[1] != "/hookstream" || test[2] != "healthcheck" {
		return nil
	}
	i := slices.Index(test, "--url")
	if i < 0 || i+1 >= len(test) {
		return nil
	}
	u, err := url.Parse(test[i+1])
	if err != nil {
		return nil
	}
	return u
}

func portOf(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return port
}

func TestCompose(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"kafka", "redis", "api", "fanout", "deliverer", "indexer", "otel-collector", "jaeger"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	for _, prob := range composeProblems(p) {
		t.Error(prob)
	}
}

// TestComposeProblemsCatchesMistakes proves each check in composeProblems can fail.
func TestComposeProblemsCatchesMistakes(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *types.Project)
		want   string
	}{
		{"undefined dependency", func(p *types.Project) {
			s := p.Services["api"]
			s.DependsOn["zookeeper"] = types.ServiceDependency{Condition: types.ServiceConditionStarted}
			p.Services["api"] = s
		}, `undefined service "zookeeper"`},
		{"healthy wait on service without healthcheck", func(p *types.Project) {
			s := p.Services["api"]
			s.DependsOn["jaeger"] = types.ServiceDependency{Condition: types.ServiceConditionHealthy}
			p.Services["api"] = s
		}, "jaeger has no healthcheck"},
		{"healthcheck without test", func(p *types.Project) {
			s := p.Services["redis"]
			s.HealthCheck.Test = types.HealthCheckTest{"CMD"}
			p.Services["redis"] = s
		}, "redis: healthcheck has no test command"},
		{"role built from another Dockerfile", func(p *types.Project) {
			s := p.Services["fanout"]
			s.Build.Dockerfile = "Dockerfile"
			p.Services["fanout"] = s
		}, "fanout: built from"},
		{"healthcheck on the wrong port", func(p *types.Project) {
			s := p.Services["deliverer"]
			s.HealthCheck.Test = types.HealthCheckTest{"CMD", "/hookstream", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"}
			p.Services["deliverer"] = s
		}, "deliverer: healthcheck"},
		{"stop kills the drain", func(p *types.Project) {
			s := p.Services["deliverer"]
			s.StopGracePeriod = nil
			p.Services["deliverer"] = s
		}, "deliverer: stop_grace_period 10s"},
		{"healthcheck needing a shell", func(p *types.Project) {
			s := p.Services["api"]
			s.HealthCheck.Test = types.HealthCheckTest{"CMD-SHELL", "curl -f http://127.0.0.1:8080/healthz"}
			p.Services["api"] = s
		}, "api: healthcheck"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := loadCompose(t)
			tt.mutate(p)
			probs := composeProblems(p)
			if !slices.ContainsFunc(probs, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("problems %q do not include %q", probs, tt.want)
			}
		})
	}
}

// TestOtelCollectorConfig checks that every pipeline names defined components
// and that compose mounts the file as the collector's config.
func TestOtelCollectorConfig(t *testing.T) {
	b, err := os.ReadFile("otel-collector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Receivers  map[string]any `json:"receivers"`
		Processors map[string]any `json:"processors"`
		Exporters  map[string]any `json:"exporters"`
		Service    struct {
			Pipelines map[string]struct {
				Receivers  []string `json:"receivers"`
				Processors []string `json:"processors"`
				Exporters  []string `json:"exporters"`
			} `json:"pipelines"`
		} `json:"service"`
	}
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		t.Fatalf("otel-collector.yaml: %v", err)
	}
	if _, ok := cfg.Service.Pipelines["traces"]; !ok {
		t.Error("no traces pipeline")
	}
	// A role pushing metrics to a collector without a metrics pipeline
	// logs an export error at every push.
	project := loadCompose(t)
	for role := range roles {
		if v := project.Services[role].Environment["OTEL_METRICS_EXPORTER"]; v != nil && *v == "otlp" {
			if _, ok := cfg.Service.Pipelines["metrics"]; !ok {
				t.Errorf("%s pushes metrics over OTLP, but the collector has no metrics pipeline", role)
			}
		}
	}
	for name, pl := range cfg.Service.Pipelines {
		for _, c := range []struct {
			kind    string
			used    []string
			defined map[string]any
		}{{"receiver", pl.Receivers, cfg.Receivers}, {"processor", pl.Processors, cfg.Processors}, {"exporter", pl.Exporters, cfg.Exporters}} {
			if c.kind != "processor" && len(c.used) == 0 {
				t.Errorf("pipeline %s has no %s", name, c.kind)
			}
			for _, u := range c.used {
				if _, ok := c.defined[u]; !ok {
					t.Errorf("pipeline %s uses undefined %s %q", name, c.kind, u)
				}
			}
		}
	}

	want, err := filepath.Abs("otel-collector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	col := loadCompose(t).Services["otel-collector"]
	if !slices.ContainsFunc(col.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Source == want }) {
		t.Errorf("otel-collector does not mount %s: %+v", want, col.Volumes)
	}
}

// ---------------------------------------------------------------- Dockerfile

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines so each instruction is one line.
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var froms []string
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(f[0], "FROM") {
			froms = append(froms, line)
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got FROM lines %q", froms)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^FROM .*golang:1\.26\b.* AS build$`),
		regexp.MustCompile(`CGO_ENABLED=0 .*go build -trimpath -ldflags "-s -w" -o /out/hookstream \./cmd/hookstream`),
		regexp.MustCompile(`(?m)^COPY --from=build /out/hookstream /hookstream$`),
		regexp.MustCompile(`(?m)^USER nonroot$`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/hookstream"\]$`),
	} {
		if !want.MatchString(text) {
			t.Errorf("Dockerfile does not match %s", want)
		}
	}
	if last := froms[len(froms)-1]; strings.TrimSpace(last) != "FROM gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage is %q, want distroless static nonroot", last)
	}
}

// ---------------------------------------------------------------- Kubernetes

// kinds are the Kubernetes types the manifests may use, by apiVersion/kind.
var kinds = map[string]func() any{
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
}

// decodeStrict decodes one manifest into its typed object, rejecting unknown
// and duplicate fields. Field names match case-sensitively, as in the API
// server: yaml.UnmarshalStrict goes through encoding/json, which would accept
// readOnlyRootFileSystem for readOnlyRootFilesystem, a field the API server
// then drops.
func decodeStrict(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, fmt.Errorf("read kind: %w", err)
	}
	if obj, ok, err := decodeCRD(tm.APIVersion, tm.Kind, doc); ok {
		return obj, err
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("unsupported apiVersion %q kind %q", tm.APIVersion, tm.Kind)
	}
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	obj := newObj()
	strict, err := sigsjson.UnmarshalStrict(j, obj, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if err := errors.Join(strict...); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return obj, nil
}

// splitDocs splits a multi-document YAML file, dropping empty documents.
func splitDocs(b []byte) ([][]byte, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, err
		}
		if len(m) > 0 {
			docs = append(docs, doc)
		}
	}
}

type manifest struct {
	file string
	obj  any
}

// loadManifests strictly decodes every manifest under dir: all YAML files but
// kustomization.yaml.
func loadManifests(t *testing.T, dir string) []manifest {
	t.Helper()
	var ms []manifest
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isYAML(path) || d.Name() == "kustomization.yaml" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		docs, err := splitDocs(b)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for i, doc := range docs {
			obj, err := decodeStrict(doc)
			if err != nil {
				t.Errorf("%s document %d: %v", path, i+1, err)
				continue
			}
			ms = append(ms, manifest{file: path, obj: obj})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatalf("no manifests under %s", dir)
	}
	return ms
}

func isYAML(path string) bool {
	return strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")
}

func objectsOf[T any](ms []manifest) []T {
	var out []T
	for _, m := range ms {
		if o, ok := m.obj.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

func TestKubernetesManifestsDecodeStrictly(t *testing.T) {
	ms := loadManifests(t, kubernetesDir)
	t.Logf("%d manifests decoded", len(ms))
}

// TestStrictDecodeRejectsUnknownFields corrupts in-memory copies of real
// manifests: a decode that let these through would not be strict.
func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	tests := []struct {
		file string
		kind string
		path []string // where to add the unknown field "bogus"
	}{
		{"api.yaml", "Deployment", []string{"spec"}},
		{"api.yaml", "Deployment", []string{"spec", "template", "spec"}},
		{"api.yaml", "Deployment", []string{"spec", "template", "spec", "securityContext"}},
		{"api.yaml", "Service", []string{"spec"}},
		{"api.yaml", "PodDisruptionBudget", []string{"spec"}},
		{"api.yaml", "HorizontalPodAutoscaler", []string{"spec"}},
		{"configmap.yaml", "ConfigMap", nil},
		{"secret.yaml", "Secret", nil},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+strings.Join(tt.path, "."), func(t *testing.T) {
			doc := findDoc(t, filepath.Join(baseDir, tt.file), tt.kind)
			if _, err := decodeStrict(doc); err != nil {
				t.Fatalf("unmodified %s does not decode: %v", tt.kind, err)
			}
			var m map[string]any
			if err := yaml.Unmarshal(doc, &m); err != nil {
				t.Fatal(err)
			}
			node := m
			for _, k := range tt.path {
				next, ok := node[k].(map[string]any)
				if !ok {
					t.Fatalf("%s has no map at %s", tt.kind, k)
				}
				node = next
			}
			node["bogus"] = true
			bad, err := yaml.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decodeStrict(bad); err == nil || !strings.Contains(err.Error(), "bogus") {
				t.Errorf("decode of %s with unknown field: err = %v, want an error naming the field", tt.kind, err)
			}
		})
	}

	t.Run("duplicate key", func(t *testing.T) {
		doc := findDoc(t, filepath.Join(baseDir, "api.yaml"), "Service")
		bad := append(bytes.Clone(doc), []byte("kind: Service\n")...)
		if _, err := decodeStrict(bad); err == nil {
			t.Error("manifest with a duplicate key decoded without error")
		}
	})

	t.Run("typo in a nested field", func(t *testing.T) {
		doc := findDoc(t, filepath.Join(baseDir, "api.yaml"), "Deployment")
		bad := bytes.Replace(doc, []byte("readOnlyRootFilesystem:"), []byte("readOnlyRootFileSystem:"), 1)
		if bytes.Equal(bad, doc) {
			t.Fatal("api.yaml has no readOnlyRootFilesystem to misspell")
		}
		if _, err := decodeStrict(bad); err == nil || !strings.Contains(err.Error(), "readOnlyRootFileSystem") {
			t.Errorf("decode with misspelled readOnlyRootFileSystem: err = %v, want an error naming it", err)
		}
	})
}

func findDoc(t *testing.T, file, kind string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := splitDocs(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err == nil && tm.Kind == kind {
			return doc
		}
	}
	t.Fatalf("%s has no %s", file, kind)
	return nil
}

// deploymentProblems lists what is wrong with the Deployment of a role.
func deploymentProblems(role string, d *appsv1.Deployment) []string {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, role+": "+fmt.Sprintf(format, args...)) }
	want, _ := strconv.Atoi(roles[role])

	pod := d.Spec.Template
	if d.Spec.Selector == nil {
		add("no selector")
	} else if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
		add("selector %v does not match pod labels %v", d.Spec.Selector, pod.Labels)
	}
	if len(pod.Spec.Containers) != 1 {
		add("want one container, got %d", len(pod.Spec.Containers))
		return probs
	}
	c := pod.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != role {
		add("args %q do not start the role", c.Args)
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return int(p.ContainerPort) == want }) {
		add("no container port %d", want)
	}
	for _, e := range c.Env {
		if e.Name == "HOOKSTREAM_HTTP_ADDR" && portOf(e.Value) != roles[role] {
			add("HOOKSTREAM_HTTP_ADDR %q, want port %d", e.Value, want)
		}
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			add("no HTTP %s", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			add("%s path %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
		}
		if got, ok := resolvePort(c.Ports, p.probe.HTTPGet.Port); !ok || got != want {
			add("%s port %s is not container port %d", p.name, p.probe.HTTPGet.Port.String(), want)
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			add("no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			add("no %s limit", r)
		}
	}

	psc, csc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		add("pod does not set runAsNonRoot")
	}
	// The image's user is a name; the kubelet needs a uid to verify runAsNonRoot.
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		add("pod does not set a non-zero runAsUser")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		add("pod seccompProfile is not RuntimeDefault")
	}
	if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		add("root filesystem not read-only")
	}
	if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		add("allowPrivilegeEscalation not false")
	}
	if csc == nil || csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
		add("capabilities do not drop ALL")
	}

	if len(pod.Spec.TopologySpreadConstraints) == 0 {
		add("no topologySpreadConstraints")
	}
	for _, tsc := range pod.Spec.TopologySpreadConstraints {
		if sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector); err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			add("topology spread on %s does not select the role's pods", tsc.TopologyKey)
		}
	}
	grace := pod.Spec.TerminationGracePeriodSeconds
	if grace == nil {
		add("terminationGracePeriodSeconds not set")
	} else {
		if role == "deliverer" && *grace < 60 {
			add("terminationGracePeriodSeconds %d is too short for the deliverer drain", *grace)
		}
		var preStop time.Duration
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
		// The kubelet's grace period covers the preStop hook too.
		if p := graceProblem(time.Duration(*grace)*time.Second-preStop, envValue(c.Env, "HOOKSTREAM_SHUTDOWN_GRACE")); p != "" {
			add("terminationGracePeriodSeconds %d with preStop %s: %s", *grace, preStop, p)
		}
	}
	// The HorizontalPodAutoscaler owns api's count; workers scale by hand.
	if role == "api" && d.Spec.Replicas != nil {
		add("replicas set, but the HorizontalPodAutoscaler owns the count")
	}
	if role != "api" && d.Spec.Replicas == nil {
		add("replicas not set")
	}
	return probs
}

// graceMargin is what a process needs after its shutdown grace to exit.
const graceMargin = 5 * time.Second

// graceProblem says why a stop timeout (what the container runtime waits
// before SIGKILL) does not cover the binary's --shutdown-grace, or "".
func graceProblem(stop time.Duration, shutdownGrace string) string {
	if shutdownGrace == "" {
		return "HOOKSTREAM_SHUTDOWN_GRACE not set"
	}
	g, err := time.ParseDuration(shutdownGrace)
	if err != nil {
		return fmt.Sprintf("HOOKSTREAM_SHUTDOWN_GRACE: %v", err)
	}
	if stop < g+graceMargin {
		return fmt.Sprintf("leaves %s for a shutdown grace of %s, want %s more", stop, g, graceMargin)
	}
	return ""
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// resolvePort returns the container port a probe or Service port refers to.
func resolvePort(ports []corev1.ContainerPort, p intstr.IntOrString) (int, bool) {
	if p.Type == intstr.Int {
		return p.IntValue(), slices.ContainsFunc(ports, func(c corev1.ContainerPort) bool { return int(c.ContainerPort) == p.IntValue() })
	}
	for _, c := range ports {
		if c.Name == p.StrVal {
			return int(c.ContainerPort), true
		}
	}
	return 0, false
}

func baseDeployments(t *testing.T) map[string]*appsv1.Deployment {
	t.Helper()
	byRole := map[string]*appsv1.Deployment{}
	for _, d := range objectsOf[*appsv1.Deployment](loadManifests(t, baseDir)) {
		role, ok := strings.CutPrefix(d.Name, "hookstream-")
		if _, known := roles[role]; !ok || !known {
			t.Errorf("Deployment %s is not hookstream-<role>", d.Name)
			continue
		}
		byRole[role] = d
	}
	for role := range roles {
		if byRole[role] == nil {
			t.Errorf("no Deployment hookstream-%s in %s", role, baseDir)
		}
	}
	return byRole
}

func TestKubernetesBase(t *testing.T) {
	ms := loadManifests(t, baseDir)
	deps := baseDeployments(t)
	for role, d := range deps {
		for _, prob := range deploymentProblems(role, d) {
			t.Error(prob)
		}
	}

	// roleOf finds the role whose pods a selector picks, or "".
	roleOf := func(sel labels.Selector) string {
		for role, d := range deps {
			if !sel.Empty() && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				return role
			}
		}
		return ""
	}

	for _, s := range objectsOf[*corev1.Service](ms) {
		role := roleOf(labels.SelectorFromSet(s.Spec.Selector))
		if role == "" {
			t.Errorf("Service %s selects no role's pods", s.Name)
			continue
		}
		for _, p := range s.Spec.Ports {
			got, ok := resolvePort(deps[role].Spec.Template.Spec.Containers[0].Ports, p.TargetPort)
			if !ok {
				t.Errorf("Service %s port %s targets %s, not a container port", s.Name, p.Name, p.TargetPort.String())
			}
			if s.Name == "hookstream-api" && (p.Port != 80 || got != 8080) {
				t.Errorf("Service hookstream-api maps %d -> %d, want 80 -> 8080", p.Port, got)
			}
		}
	}
	if !slices.ContainsFunc(objectsOf[*corev1.Service](ms), func(s *corev1.Service) bool { return s.Name == "hookstream-api" }) {
		t.Error("no Service hookstream-api")
	}

	pdbRoles := map[string]bool{}
	for _, p := range objectsOf[*policyv1.PodDisruptionBudget](ms) {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			t.Errorf("PodDisruptionBudget %s: %v", p.Name, err)
			continue
		}
		role := roleOf(sel)
		if role == "" || pdbRoles[role] {
			t.Errorf("PodDisruptionBudget %s selects %q: want exactly one per role", p.Name, role)
		}
		pdbRoles[role] = true
	}
	for role := range roles {
		if !pdbRoles[role] {
			t.Errorf("no PodDisruptionBudget for %s", role)
		}
	}

	hpas := objectsOf[*autoscalingv2.HorizontalPodAutoscaler](ms)
	if len(hpas) != 1 {
		t.Fatalf("want one HorizontalPodAutoscaler (api), got %d", len(hpas))
	}
	if ref := hpas[0].Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != "hookstream-api" {
		t.Errorf("HorizontalPodAutoscaler targets %s %s, want Deployment hookstream-api", ref.Kind, ref.Name)
	}
}

// TestDeploymentProblemsCatchesMistakes proves each Deployment check can fail.
func TestDeploymentProblemsCatchesMistakes(t *testing.T) {
	tests := []struct {
		name   string
		role   string
		mutate func(c *corev1.Container, d *appsv1.Deployment)
		want   string
	}{
		{"no readiness probe", "api", func(c *corev1.Container, _ *appsv1.Deployment) { c.ReadinessProbe = nil }, "no HTTP readinessProbe"},
		{"liveness on /readyz", "fanout", func(c *corev1.Container, _ *appsv1.Deployment) { c.LivenessProbe.HTTPGet.Path = "/readyz" }, "livenessProbe path"},
		{"probe on another port", "deliverer", func(c *corev1.Container, _ *appsv1.Deployment) {
			c.ReadinessProbe.HTTPGet.Port = intstr.FromInt32(8080)
		}, "readinessProbe port"},
		{"api on the worker port", "api", func(c *corev1.Container, _ *appsv1.Deployment) { c.Ports[0].ContainerPort = 9090 }, "no container port 8080"},
		{"no memory limit", "deliverer", func(c *corev1.Container, _ *appsv1.Deployment) { delete(c.Resources.Limits, corev1.ResourceMemory) }, "no memory limit"},
		{"writable root", "api", func(c *corev1.Container, _ *appsv1.Deployment) { c.SecurityContext.ReadOnlyRootFilesystem = nil }, "not read-only"},
		{"short deliverer grace", "deliverer", func(_ *corev1.Container, d *appsv1.Deployment) {
			d.Spec.Template.Spec.TerminationGracePeriodSeconds = new(int64(30))
		}, "too short"},
		{"kill before the drain ends", "fanout", func(c *corev1.Container, _ *appsv1.Deployment) {
			for i := range c.Env {
				if c.Env[i].Name == "HOOKSTREAM_SHUTDOWN_GRACE" {
					c.Env[i].Value = "29s"
				}
			}
		}, "want 5s more"},
		{"preStop eats the grace", "api", func(c *corev1.Container, _ *appsv1.Deployment) {
			c.Lifecycle.PreStop.Sleep.Seconds = 20
		}, "want 5s more"},
	}
	deps := baseDeployments(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deps[tt.role].DeepCopy()
			tt.mutate(&d.Spec.Template.Spec.Containers[0], d)
			probs := deploymentProblems(tt.role, d)
			if !slices.ContainsFunc(probs, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("problems %q do not include %q", probs, tt.want)
			}
		})
	}
}

// TestKustomizations checks that every file a kustomization names exists and
// that every manifest beside it is named, so none is silently left out.
func TestKustomizations(t *testing.T) {
	var found int
	err := filepath.WalkDir(kubernetesDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "kustomization.yaml" {
			return err
		}
		found++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var k struct {
			Resources []string `json:"resources"`
			Patches   []struct {
				Path string `json:"path"`
			} `json:"patches"`
		}
		if err := yaml.Unmarshal(b, &k); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		dir := filepath.Dir(path)
		named := map[string]bool{}
		refs := k.Resources
		for _, p := range k.Patches {
			if p.Path != "" {
				refs = append(refs, p.Path)
			}
		}
		if len(k.Resources) == 0 {
			t.Errorf("%s lists no resources", path)
		}
		for _, r := range refs {
			p := filepath.Join(dir, r)
			named[p] = true
			fi, err := os.Stat(p)
			if err != nil {
				t.Errorf("%s: %s: %v", path, r, err)
				continue
			}
			if fi.IsDir() {
				if _, err := os.Stat(filepath.Join(p, "kustomization.yaml")); err != nil {
					t.Errorf("%s: directory %s has no kustomization.yaml", path, r)
				}
			}
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			if !e.IsDir() && isYAML(p) && e.Name() != "kustomization.yaml" && !named[p] {
				t.Errorf("%s: %s is not listed in resources or patches", path, e.Name())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 2 {
		t.Errorf("found %d kustomization.yaml files, want base and an overlay", found)
	}
}

// ---------------------------------------------------------------- env vars vs the binary

// usedEnv returns, per role, the HOOKSTREAM_* names compose.yaml and the
// Kubernetes manifests set on it, each with where it was set.
func usedEnv(t *testing.T) map[string]map[string]string {
	t.Helper()
	used := map[string]map[string]string{}
	add := func(role, name, where string) {
		if !strings.HasPrefix(name, "HOOKSTREAM_") {
			return
		}
		if used[role] == nil {
			used[role] = map[string]string{}
		}
		used[role][name] = where
	}
	p := loadCompose(t)
	for role := range roles {
		for name := range p.Services[role].Environment {
			add(role, name, "compose.yaml")
		}
	}

	ms := loadManifests(t, kubernetesDir)
	keys := map[string][]string{} // "ConfigMap/name" -> data keys, over base and overlays
	for _, m := range ms {
		switch o := m.obj.(type) {
		case *corev1.ConfigMap:
			for k := range o.Data {
				keys["ConfigMap/"+o.Name] = append(keys["ConfigMap/"+o.Name], k)
				// Known to some role at least, even if no Deployment reads it.
				add("any", k, m.file)
			}
		case *corev1.Secret:
			for k := range o.StringData {
				keys["Secret/"+o.Name] = append(keys["Secret/"+o.Name], k)
				add("any", k, m.file)
			}
			for k := range o.Data {
				keys["Secret/"+o.Name] = append(keys["Secret/"+o.Name], k)
				add("any", k, m.file)
			}
		}
	}
	for _, m := range ms {
		d, ok := m.obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		role := strings.TrimPrefix(d.Name, "hookstream-")
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				add(role, e.Name, m.file)
			}
			for _, ef := range c.EnvFrom {
				var ref string
				switch {
				case ef.ConfigMapRef != nil:
					ref = "ConfigMap/" + ef.ConfigMapRef.Name
				case ef.SecretRef != nil:
					ref = "Secret/" + ef.SecretRef.Name
				}
				for _, k := range keys[ref] {
					add(role, ef.Prefix+k, m.file+" via "+ref)
				}
			}
		}
	}
	return used
}

// missingPackage matches `go build` errors that mean ./cmd/hookstream does
// not exist yet, as opposed to code that exists and does not compile.
var missingPackage = regexp.MustCompile(`directory not found|no Go files in|cannot find package|is not in std|matched no packages|no required module provides package`)

// buildBinary builds ./cmd/hookstream, skipping the test while it does not exist.
func buildBinary(t *testing.T) string {
	t.Helper()
	// go test caches a result until a file the test process itself opened
	// changes; it never sees what `go build` reads. So open what the result
	// depends on: cmd/hookstream (for when it appears), go.mod, and below
	// every package of this module that the binary imports.
	_, _ = os.ReadDir(filepath.Join(repoRoot, "cmd", "hookstream"))
	_, _ = os.ReadFile(filepath.Join(repoRoot, "go.mod"))

	bin := filepath.Join(t.TempDir(), "hookstream")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/hookstream")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		if missingPackage.Match(out) {
			t.Skipf("cmd/hookstream does not exist yet: %s", bytes.TrimSpace(out))
		}
		t.Fatalf("go build ./cmd/hookstream: %v\n%s", err, out)
	}

	list := exec.CommandContext(t.Context(), "go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/hookstream")
	list.Dir = repoRoot
	dirs, err := list.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/hookstream: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(string(dirs)) {
		if strings.HasPrefix(dir, root+string(filepath.Separator)) {
			_, _ = os.ReadDir(dir) // a directory's hash covers its files' sizes and times
		}
	}
	return bin
}

var (
	// Go flag package ("  -kafka-brokers string") or pflag ("  -k, --kafka-brokers string").
	flagLine = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--?([a-z0-9][a-z0-9-]*)`)
	envToken = regexp.MustCompile(`\bHOOKSTREAM_[A-Z0-9_]+\b`)
)

// knownEnv runs `hookstream <command> --help` and returns the HOOKSTREAM_*
// names of its flags, plus any the help text names itself.
func knownEnv(t *testing.T, bin, command string) (map[string]bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, command, "--help")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, _ := cmd.CombinedOutput() // --help may exit 0 or 2; the text is what counts
	known := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		if m[1] == "h" || m[1] == "help" {
			continue
		}
		known["HOOKSTREAM_"+strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))] = true
	}
	for _, name := range envToken.FindAllString(string(out), -1) {
		known[name] = true
	}
	return known, string(out)
}

func TestEnvKnownToBinary(t *testing.T) {
	used := usedEnv(t) // before the build, so manifest errors show without Go
	bin := buildBinary(t)

	all := map[string]bool{}
	complete := true
	for role := range roles {
		known, help := knownEnv(t, bin, role)
		if len(known) == 0 {
			t.Errorf("hookstream %s --help lists no flags:\n%s", role, help)
			complete = false
			continue
		}
		for name := range known {
			all[name] = true
		}
		for name, where := range used[role] {
			if !known[name] {
				t.Errorf("%s sets %s on %s, but `hookstream %s` has no such flag; its help:\n%s", where, name, role, role, help)
			}
		}
	}
	for name, where := range used["any"] {
		if complete && !all[name] {
			t.Errorf("%s holds %s, which no role knows", where, name)
		}
	}

	// compose.yaml health checks run `hookstream healthcheck --url URL`.
	if known, help := knownEnv(t, bin, "healthcheck"); !known["HOOKSTREAM_URL"] {
		t.Errorf("`hookstream healthcheck` has no --url flag; its help:\n%s", help)
	}
}

// ---------------------------------------------------------------- partitions vs replicas

// kustomization is the part of kustomize the render below follows. Decoding
// is strict, so an overlay using more of kustomize fails the test instead of
// rendering wrong. namespace and images change neither replicas nor env.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
	Replicas []struct {
		Name  string `json:"name"`
		Count int32  `json:"count"`
	} `json:"replicas"`
	Patches []struct {
		Path  string `json:"path"`
		Patch string `json:"patch"`
	} `json:"patches"`
}

// render builds the kustomization in dir as kustomize would, as far as the
// Deployments' replicas and env and the ConfigMaps' data go: its resources,
// then its strategic-merge patches (replicas, containers and env entries
// merged by name, ConfigMap data by key, `$patch: delete`), then its
// replicas list. Objects are keyed "Kind/name".
func render(dir string) (map[string]any, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
	}
	objs := map[string]any{}
	for _, r := range k.Resources {
		path := filepath.Join(dir, r)
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			sub, err := render(path)
			if err != nil {
				return nil, err
			}
			maps.Copy(objs, sub)
			continue
		}
		docs, err := readDocs(path)
		if err != nil {
			return nil, err
		}
		for _, doc := range docs {
			obj, err := decodeStrict(doc)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			objs[objectKey(obj)] = obj
		}
	}
	for _, p := range k.Patches {
		docs := [][]byte{[]byte(p.Patch)}
		if p.Path != "" {
			if docs, err = readDocs(filepath.Join(dir, p.Path)); err != nil {
				return nil, err
			}
		}
		for _, doc := range docs {
			if err := applyPatch(objs, doc); err != nil {
				return nil, fmt.Errorf("%s: patch %s: %w", dir, p.Path, err)
			}
		}
	}
	for _, r := range k.Replicas {
		d, ok := objs["Deployment/"+r.Name].(*appsv1.Deployment)
		if !ok {
			return nil, fmt.Errorf("%s: replicas for missing Deployment %s", dir, r.Name)
		}
		d.Spec.Replicas = new(r.Count)
	}
	return objs, nil
}

func readDocs(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return splitDocs(b)
}

func objectKey(obj any) string {
	o := obj.(interface {
		metav1.Object
		GetObjectKind() schema.ObjectKind
	})
	return o.GetObjectKind().GroupVersionKind().Kind + "/" + o.GetName()
}

// applyPatch applies one strategic-merge patch to the object it names.
func applyPatch(objs map[string]any, doc []byte) error {
	var m map[string]any
	if err := yaml.Unmarshal(doc, &m); err != nil {
		return err
	}
	directive, _ := m["$patch"].(string)
	delete(m, "$patch")
	clean, err := yaml.Marshal(m)
	if err != nil {
		return err
	}
	patch, err := decodeStrict(clean)
	if err != nil {
		return err
	}
	key := objectKey(patch)
	target, ok := objs[key]
	if !ok {
		return fmt.Errorf("no %s to patch", key)
	}
	switch {
	case directive == "delete":
		delete(objs, key)
		return nil
	case directive != "":
		return fmt.Errorf("$patch: %s is not followed here", directive)
	}
	// Patches of other kinds (the HorizontalPodAutoscaler's) change
	// neither replicas nor env.
	switch p := patch.(type) {
	case *appsv1.Deployment:
		mergeDeployment(target.(*appsv1.Deployment), p)
	case *corev1.ConfigMap:
		t := target.(*corev1.ConfigMap)
		if t.Data == nil {
			t.Data = map[string]string{}
		}
		maps.Copy(t.Data, p.Data)
	}
	return nil
}

// mergeDeployment merges patch into d as a strategic-merge patch does, for
// replicas, the containers' env and volume mounts, the pod's volumes and
// fsGroup: containers, env entries, mounts and volumes by name.
func mergeDeployment(d, patch *appsv1.Deployment) {
	if patch.Spec.Replicas != nil {
		d.Spec.Replicas = patch.Spec.Replicas
	}
	cs := &d.Spec.Template.Spec.Containers
	for _, pc := range patch.Spec.Template.Spec.Containers {
		i := slices.IndexFunc(*cs, func(c corev1.Container) bool { return c.Name == pc.Name })
		if i < 0 {
			*cs = append(*cs, pc)
			continue
		}
		// Entries the patch adds come first, in the patch's order, as
		// kustomize's strategic merge puts them.
		env := &(*cs)[i].Env
		var added []corev1.EnvVar
		for _, e := range pc.Env {
			if j := slices.IndexFunc(*env, func(x corev1.EnvVar) bool { return x.Name == e.Name }); j >= 0 {
				(*env)[j] = e
			} else {
				added = append(added, e)
			}
		}
		*env = append(added, *env...)
		mergeByName(&(*cs)[i].VolumeMounts, pc.VolumeMounts, func(m corev1.VolumeMount) string { return m.Name })
	}
	mergeByName(&d.Spec.Template.Spec.Volumes, patch.Spec.Template.Spec.Volumes, func(v corev1.Volume) string { return v.Name })
	if sc := patch.Spec.Template.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		if d.Spec.Template.Spec.SecurityContext == nil {
			d.Spec.Template.Spec.SecurityContext = &corev1.PodSecurityContext{}
		}
		d.Spec.Template.Spec.SecurityContext.FSGroup = sc.FSGroup
	}
}

// containerEnv is the value of name in the role container of d, from its
// env or, failing that, the ConfigMaps of its envFrom, as the kubelet
// resolves it; "" when unset.
func containerEnv(d *appsv1.Deployment, objs map[string]any, name string) string {
	c := d.Spec.Template.Spec.Containers[0]
	if i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name }); i >= 0 {
		return c.Env[i].Value
	}
	v := ""
	for _, ef := range c.EnvFrom { // a later source wins
		if ef.ConfigMapRef == nil {
			continue
		}
		if cm, ok := objs["ConfigMap/"+ef.ConfigMapRef.Name].(*corev1.ConfigMap); ok {
			if x, ok := cm.Data[strings.TrimPrefix(name, ef.Prefix)]; ok && strings.HasPrefix(name, ef.Prefix) {
				v = x
			}
		}
	}
	return v
}

// partitionVars maps each partition variable to the consumer role whose
// replicas it bounds.
var partitionVars = map[string]string{
	"HOOKSTREAM_PARTITIONS_EVENTS":     "fanout",
	"HOOKSTREAM_PARTITIONS_DELIVERIES": "deliverer",
}

// partitionProblems lists what is wrong with the partition counts of a
// rendering: reads says which partition variables each role reads. Every
// role creates missing topics, whichever starts first, so each must set
// every partition variable it reads, all to one count, and that count must
// not be below the replicas of the role consuming the topic.
func partitionProblems(objs map[string]any, reads map[string][]string) []string {
	var probs []string
	counts := map[string]int{}
	for _, role := range slices.Sorted(maps.Keys(reads)) {
		d, ok := objs["Deployment/hookstream-"+role].(*appsv1.Deployment)
		if !ok {
			probs = append(probs, "no Deployment hookstream-"+role)
			continue
		}
		for _, name := range reads[role] {
			v := containerEnv(d, objs, name)
			n, err := strconv.Atoi(v)
			switch {
			case v == "":
				probs = append(probs, fmt.Sprintf("%s: %s not set, so topics it creates get the broker's default count", role, name))
			case err != nil || n < 1:
				probs = append(probs, fmt.Sprintf("%s: %s=%q is not a partition count", role, name, v))
			case counts[name] != 0 && counts[name] != n:
				probs = append(probs, fmt.Sprintf("%s: %s=%d, another role sets %d: the topics' count depends on which starts first", role, name, n, counts[name]))
			default:
				counts[name] = n
			}
		}
	}
	for name, consumer := range partitionVars {
		d, ok := objs["Deployment/hookstream-"+consumer].(*appsv1.Deployment)
		if !ok || d.Spec.Replicas == nil || counts[name] == 0 {
			continue
		}
		if r := int(*d.Spec.Replicas); r > counts[name] {
			probs = append(probs, fmt.Sprintf("%s: %d replicas, but %s=%d: %d would idle", consumer, r, name, counts[name], r-counts[name]))
		}
	}
	return probs
}

// renderings are the kustomizations whose partition counts are checked.
var renderings = []string{baseDir, "kubernetes/overlays/example", kedaOverlay}

// TestPartitionsCoverReplicas renders base and the example overlay and
// checks their partition counts against the replicas, with the partition
// variables each role reads taken from its --help.
func TestPartitionsCoverReplicas(t *testing.T) {
	bin := buildBinary(t)
	reads := map[string][]string{}
	for role := range roles {
		known, _ := knownEnv(t, bin, role)
		for name := range known {
			if strings.HasPrefix(name, "HOOKSTREAM_PARTITIONS_") {
				reads[role] = append(reads[role], name)
			}
		}
	}
	for name, consumer := range partitionVars {
		if !slices.Contains(reads[consumer], name) {
			t.Errorf("hookstream %s does not read %s: the checks below prove nothing", consumer, name)
		}
	}
	for _, dir := range renderings {
		objs, err := render(dir)
		if err != nil {
			t.Fatalf("render %s: %v", dir, err)
		}
		for _, p := range partitionProblems(objs, reads) {
			t.Errorf("%s: %s", dir, p)
		}
	}
}

// TestPartitionProblemsCatchesMistakes proves each partition check can fail.
func TestPartitionProblemsCatchesMistakes(t *testing.T) {
	reads := map[string][]string{
		"api":       {"HOOKSTREAM_PARTITIONS_EVENTS", "HOOKSTREAM_PARTITIONS_DELIVERIES"},
		"fanout":    {"HOOKSTREAM_PARTITIONS_EVENTS", "HOOKSTREAM_PARTITIONS_DELIVERIES"},
		"deliverer": {"HOOKSTREAM_PARTITIONS_DELIVERIES"},
	}
	setEnv := func(objs map[string]any, role, name, value string) {
		c := &objs["Deployment/hookstream-"+role].(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
		c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
		if value != "" {
			c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
		}
	}
	tests := []struct {
		name   string
		mutate func(objs map[string]any)
		want   string
	}{
		{"more deliverers than partitions", func(objs map[string]any) {
			objs["Deployment/hookstream-deliverer"].(*appsv1.Deployment).Spec.Replicas = new(int32(13))
		}, "deliverer: 13 replicas"},
		{"fanout partitions lowered everywhere", func(objs map[string]any) {
			for _, role := range []string{"api", "fanout"} {
				setEnv(objs, role, "HOOKSTREAM_PARTITIONS_EVENTS", "2")
			}
		}, "fanout: 3 replicas"},
		{"api leaves the count to the broker", func(objs map[string]any) {
			setEnv(objs, "api", "HOOKSTREAM_PARTITIONS_DELIVERIES", "")
		}, "api: HOOKSTREAM_PARTITIONS_DELIVERIES not set"},
		{"roles disagree", func(objs map[string]any) {
			setEnv(objs, "fanout", "HOOKSTREAM_PARTITIONS_EVENTS", "24")
		}, "another role sets"},
		{"not a number", func(objs map[string]any) {
			setEnv(objs, "deliverer", "HOOKSTREAM_PARTITIONS_DELIVERIES", "-1")
		}, `"-1" is not a partition count`},
		{"set through the ConfigMap instead", func(objs map[string]any) {
			setEnv(objs, "api", "HOOKSTREAM_PARTITIONS_EVENTS", "")
			objs["ConfigMap/hookstream"].(*corev1.ConfigMap).Data["HOOKSTREAM_PARTITIONS_EVENTS"] = "1"
		}, "HOOKSTREAM_PARTITIONS_EVENTS=12, another role sets 1:"},
	}
	if probs := func() []string {
		objs, err := render("kubernetes/overlays/example")
		if err != nil {
			t.Fatal(err)
		}
		return partitionProblems(objs, reads)
	}(); len(probs) > 0 {
		t.Fatalf("unmodified overlay has problems: %q", probs)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := render("kubernetes/overlays/example")
			if err != nil {
				t.Fatal(err)
			}
			tt.mutate(objs)
			probs := partitionProblems(objs, reads)
			if !slices.ContainsFunc(probs, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("problems %q do not include %q", probs, tt.want)
			}
		})
	}
}

// TestRenderMatchesKustomize compares render with kustomize itself where
// kubectl is installed: the replicas and env of every Deployment and the
// data of every ConfigMap must agree.
func TestRenderMatchesKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl to render with kustomize")
	}
	for _, dir := range renderings {
		ours, err := render(dir)
		if err != nil {
			t.Fatalf("render %s: %v", dir, err)
		}
		out, err := exec.CommandContext(t.Context(), kubectl, "kustomize", dir).Output()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v", dir, err)
		}
		docs, err := splitDocs(out)
		if err != nil {
			t.Fatal(err)
		}
		theirs := map[string]any{}
		for _, doc := range docs {
			obj, err := decodeStrict(doc)
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v", dir, err)
			}
			theirs[objectKey(obj)] = obj
		}
		if got, want := slices.Sorted(maps.Keys(ours)), slices.Sorted(maps.Keys(theirs)); !slices.Equal(got, want) {
			t.Errorf("%s: render has %q, kustomize %q", dir, got, want)
		}
		for key, obj := range theirs {
			switch o := obj.(type) {
			case *appsv1.Deployment:
				d, _ := ours[key].(*appsv1.Deployment)
				if d == nil || !reflect.DeepEqual(d.Spec.Replicas, o.Spec.Replicas) || !reflect.DeepEqual(d.Spec.Template.Spec.Containers[0].Env, o.Spec.Template.Spec.Containers[0].Env) {
					t.Errorf("%s: %s differs from kustomize's in replicas or env", dir, key)
				}
				if d != nil && (!reflect.DeepEqual(d.Spec.Template.Spec.Volumes, o.Spec.Template.Spec.Volumes) ||
					!reflect.DeepEqual(d.Spec.Template.Spec.Containers[0].VolumeMounts, o.Spec.Template.Spec.Containers[0].VolumeMounts)) {
					t.Errorf("%s: %s differs from kustomize's in volumes or volume mounts", dir, key)
				}
			case *corev1.ConfigMap:
				if cm, _ := ours[key].(*corev1.ConfigMap); cm == nil || !maps.Equal(cm.Data, o.Data) {
					t.Errorf("%s: %s data differs from kustomize's", dir, key)
				}
			}
		}
	}
}
