package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// kedaDir holds KEDA's published CRDs (see its README for the source).
const (
	kedaDir     = "keda"
	kedaOverlay = "kubernetes/overlays/keda"
)

// crdSchemas compiles the openAPIV3Schema of every version of the vendored
// CRDs, keyed "group/version/Kind" as decodeStrict looks kinds up.
var crdSchemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	files, err := filepath.Glob(filepath.Join(kedaDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no CRDs in %s: %v", kedaDir, err)
	}
	out := map[string]*jsonschema.Schema{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var crd struct {
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind string `json:"kind"`
				} `json:"names"`
				Versions []struct {
					Name   string `json:"name"`
					Schema struct {
						OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(b, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, v := range crd.Spec.Versions {
			key := crd.Spec.Group + "/" + v.Name + "/" + crd.Spec.Names.Kind
			s := v.Schema.OpenAPIV3Schema
			strictSchema(s)
			c := jsonschema.NewCompiler()
			url := "file:///" + key + ".json"
			if err := c.AddResource(url, s); err != nil {
				return nil, fmt.Errorf("%s %s: %w", f, key, err)
			}
			if out[key], err = c.Compile(url); err != nil {
				return nil, fmt.Errorf("%s %s: %w", f, key, err)
			}
		}
	}
	return out, nil
})

// strictSchema makes a structural CRD schema reject unknown fields, as
// `kubectl apply --validate=strict` does (the API server would silently
// prune them): every object schema that lists its properties and does not
// preserve unknown fields gets additionalProperties false. Kubernetes'
// int-or-string, which JSON Schema has no type for, becomes a oneOf.
func strictSchema(s map[string]any) {
	if s["x-kubernetes-int-or-string"] == true {
		delete(s, "type")
		s["anyOf"] = []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}
	}
	if props, ok := s["properties"].(map[string]any); ok {
		if s["x-kubernetes-preserve-unknown-fields"] != true && s["additionalProperties"] == nil {
			s["additionalProperties"] = false
		}
		for _, p := range props {
			if m, ok := p.(map[string]any); ok {
				strictSchema(m)
			}
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if m, ok := s[k].(map[string]any); ok {
			strictSchema(m)
		}
	}
	for _, k := range []string{"anyOf", "oneOf", "allOf"} {
		if l, ok := s[k].([]any); ok {
			for _, x := range l {
				if m, ok := x.(map[string]any); ok {
					strictSchema(m)
				}
			}
		}
	}
}

// decodeCRD decodes a custom resource of a vendored CRD, validated against
// its schema; ok is false for kinds no vendored CRD defines.
func decodeCRD(apiVersion, kind string, doc []byte) (obj any, ok bool, err error) {
	schemas, err := crdSchemas()
	if err != nil {
		return nil, true, err
	}
	s, ok := schemas[apiVersion+"/"+kind]
	if !ok {
		return nil, false, nil
	}
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", kind, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", kind, err)
	}
	if err := s.Validate(inst); err != nil {
		return nil, true, fmt.Errorf("%s does not match KEDA's CRD schema: %w", kind, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		return nil, true, fmt.Errorf("%s: %w", kind, err)
	}
	return u, true, nil
}

// kedaProblems lists what is wrong with the ScaledObjects of a rendered
// kustomization: each of fanout and deliverer must have one, scaling its
// Deployment on the lag of its own group on the topic it consumes, never to
// zero, at most to that topic's partition count, with its Kafka
// credentials from a TriggerAuthentication in the same rendering.
func kedaProblems(objs map[string]any) []string {
	var probs []string
	want := map[string]struct{ topic, group, partitions string }{
		"fanout":    {"events", "hookstream-fanout", "HOOKSTREAM_PARTITIONS_EVENTS"},
		"deliverer": {"deliveries", "hookstream-deliverer", "HOOKSTREAM_PARTITIONS_DELIVERIES"},
	}
	for _, role := range []string{"deliverer", "fanout"} {
		w := want[role]
		so, ok := objs["ScaledObject/hookstream-"+role].(*unstructured.Unstructured)
		if !ok {
			probs = append(probs, "no ScaledObject hookstream-"+role)
			continue
		}
		d, ok := objs["Deployment/hookstream-"+role].(*appsv1.Deployment)
		if !ok {
			probs = append(probs, "no Deployment hookstream-"+role)
			continue
		}
		spec, _ := so.Object["spec"].(map[string]any)
		if ref, _ := spec["scaleTargetRef"].(map[string]any); ref["name"] != d.Name || (ref["kind"] != nil && ref["kind"] != "Deployment") {
			probs = append(probs, fmt.Sprintf("%s: scaleTargetRef %v, want Deployment %s", role, ref, d.Name))
		}
		minR, _ := spec["minReplicaCount"].(int64)
		maxR, _ := spec["maxReplicaCount"].(int64)
		if minR < 1 {
			probs = append(probs, fmt.Sprintf("%s: minReplicaCount %d: scaled to zero, nothing reads new events or parked retries", role, minR))
		}
		parts, err := strconv.Atoi(containerEnv(d, objs, w.partitions))
		switch {
		case err != nil:
			probs = append(probs, fmt.Sprintf("%s: %s not set: no partition count to cap maxReplicaCount at", role, w.partitions))
		case maxR < 1 || maxR > int64(parts):
			probs = append(probs, fmt.Sprintf("%s: maxReplicaCount %d, want 1..%d (%s): more members than partitions idle", role, maxR, parts, w.partitions))
		}
		triggers, _ := spec["triggers"].([]any)
		if len(triggers) != 1 {
			probs = append(probs, fmt.Sprintf("%s: %d triggers, want one kafka trigger", role, len(triggers)))
			continue
		}
		tr, _ := triggers[0].(map[string]any)
		md, _ := tr["metadata"].(map[string]any)
		prefix := containerEnv(d, objs, "HOOKSTREAM_TOPIC_PREFIX")
		if prefix == "" {
			prefix = "hookstream."
		}
		for k, v := range map[string]string{
			"type":          fmt.Sprint(tr["type"]),
			"topic":         fmt.Sprint(md["topic"]),
			"consumerGroup": fmt.Sprint(md["consumerGroup"]),
			"brokers":       fmt.Sprint(md["bootstrapServersFromEnv"]),
		} {
			if good := map[string]string{"type": "kafka", "topic": prefix + w.topic, "consumerGroup": w.group, "brokers": "HOOKSTREAM_KAFKA_BROKERS"}[k]; v != good {
				probs = append(probs, fmt.Sprintf("%s: trigger %s %q, want %q", role, k, v, good))
			}
		}
		if md["allowIdleConsumers"] == "true" {
			probs = append(probs, role+": allowIdleConsumers lets KEDA scale past the partition count")
		}
		if ref, _ := tr["authenticationRef"].(map[string]any); ref != nil {
			ta, ok := objs["TriggerAuthentication/"+fmt.Sprint(ref["name"])].(*unstructured.Unstructured)
			if !ok {
				probs = append(probs, fmt.Sprintf("%s: authenticationRef %v names no TriggerAuthentication of the rendering", role, ref["name"]))
				continue
			}
			// KEDA must read Kafka as the role does: the Secrets it takes
			// credentials from are ones the role's pods mount.
			mounted := map[string]bool{}
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Secret != nil {
					mounted[v.Secret.SecretName] = true
				}
			}
			refs, _, _ := unstructured.NestedSlice(ta.Object, "spec", "secretTargetRef")
			for _, r := range refs {
				if m, _ := r.(map[string]any); !mounted[fmt.Sprint(m["name"])] {
					probs = append(probs, fmt.Sprintf("%s: TriggerAuthentication %s reads Secret %v, which the role's pods do not mount", role, ta.GetName(), m["name"]))
				}
			}
		}
	}
	return probs
}

func TestKEDAOverlay(t *testing.T) {
	objs, err := render(kedaOverlay)
	if err != nil {
		t.Fatal(err)
	}
	if probs := kedaProblems(objs); len(probs) > 0 {
		t.Errorf("%s: %q", kedaOverlay, probs)
	}
	// KEDA's credentials come from a Secret, never a literal.
	for _, role := range []string{"fanout", "deliverer"} {
		ta, ok := objs["TriggerAuthentication/hookstream-kafka-"+role].(*unstructured.Unstructured)
		if !ok {
			t.Fatalf("no TriggerAuthentication hookstream-kafka-%s", role)
		}
		refs, _, _ := unstructured.NestedSlice(ta.Object, "spec", "secretTargetRef")
		params := map[string]bool{}
		for _, r := range refs {
			m, _ := r.(map[string]any)
			params[fmt.Sprint(m["parameter"])] = m["name"] != "" && m["key"] != ""
		}
		for _, p := range []string{"username", "password", "ca"} {
			if !params[p] {
				t.Errorf("TriggerAuthentication of %s has no secretTargetRef for %s", role, p)
			}
		}
	}
}

// TestKEDAChecksCatchMistakes proves the schema and each check can fail.
func TestKEDAChecksCatchMistakes(t *testing.T) {
	t.Run("schema", func(t *testing.T) {
		doc := findDoc(t, filepath.Join(kedaOverlay, "scaledobjects.yaml"), "ScaledObject")
		if _, err := decodeStrict(doc); err != nil {
			t.Fatalf("unmodified: %v", err)
		}
		for name, edit := range map[string]func(string) string{
			"unknown field": func(s string) string { return strings.Replace(s, "  pollingInterval:", "  pollingIntervall:", 1) },
			"wrong type": func(s string) string {
				return strings.Replace(s, "maxReplicaCount: 12", `maxReplicaCount: "twelve"`, 1)
			},
			"no trigger type": func(s string) string { return strings.Replace(s, "- type: kafka", "- name: kafka", 1) },
		} {
			bad := edit(string(doc))
			if bad == string(doc) {
				t.Fatalf("%s: edit changed nothing", name)
			}
			if _, err := decodeStrict([]byte(bad)); err == nil || !strings.Contains(err.Error(), "KEDA's CRD schema") {
				t.Errorf("%s: decode = %v, want a schema error", name, err)
			}
		}
	})
	tests := []struct {
		name   string
		mutate func(objs map[string]any)
		want   string
	}{
		{"past the partitions", func(objs map[string]any) { setSpec(objs, "deliverer", "maxReplicaCount", int64(13)) }, "deliverer: maxReplicaCount 13, want 1..12"},
		{"scale to zero", func(objs map[string]any) { setSpec(objs, "fanout", "minReplicaCount", int64(0)) }, "fanout: minReplicaCount 0"},
		{"partitions lowered", func(objs map[string]any) {
			c := &objs["Deployment/hookstream-fanout"].(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "HOOKSTREAM_PARTITIONS_EVENTS" })
			c.Env = append(c.Env, corev1.EnvVar{Name: "HOOKSTREAM_PARTITIONS_EVENTS", Value: "6"})
		}, "fanout: maxReplicaCount 12, want 1..6"},
		{"another group", func(objs map[string]any) { setTrigger(objs, "fanout", "consumerGroup", "hookstream-deliverer") }, `fanout: trigger consumerGroup "hookstream-deliverer"`},
		{"another topic", func(objs map[string]any) { setTrigger(objs, "deliverer", "topic", "hookstream.retries") }, `deliverer: trigger topic "hookstream.retries"`},
		{"idle consumers", func(objs map[string]any) { setTrigger(objs, "deliverer", "allowIdleConsumers", "true") }, "allowIdleConsumers"},
		{"no trigger authentication", func(objs map[string]any) { delete(objs, "TriggerAuthentication/hookstream-kafka-fanout") }, "names no TriggerAuthentication"},
		{"another role's credentials", func(objs map[string]any) {
			ta := objs["TriggerAuthentication/hookstream-kafka-deliverer"].(*unstructured.Unstructured)
			refs, _, _ := unstructured.NestedSlice(ta.Object, "spec", "secretTargetRef")
			refs[0].(map[string]any)["name"] = "hookstream-kafka-api"
			_ = unstructured.SetNestedSlice(ta.Object, refs, "spec", "secretTargetRef")
		}, "reads Secret hookstream-kafka-api, which the role's pods do not mount"},
		{"no scaled object", func(objs map[string]any) { delete(objs, "ScaledObject/hookstream-fanout") }, "no ScaledObject hookstream-fanout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := render(kedaOverlay)
			if err != nil {
				t.Fatal(err)
			}
			tt.mutate(objs)
			probs := kedaProblems(objs)
			if !slices.ContainsFunc(probs, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("problems %q do not include %q", probs, tt.want)
			}
		})
	}
}

func setSpec(objs map[string]any, role, field string, v any) {
	so := objs["ScaledObject/hookstream-"+role].(*unstructured.Unstructured)
	so.Object["spec"].(map[string]any)[field] = v
}

func setTrigger(objs map[string]any, role, key, v string) {
	so := objs["ScaledObject/hookstream-"+role].(*unstructured.Unstructured)
	tr := so.Object["spec"].(map[string]any)["triggers"].([]any)[0].(map[string]any)
	tr["metadata"].(map[string]any)[key] = v
}
