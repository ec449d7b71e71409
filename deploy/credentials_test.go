package deploy_test

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// mergeByName merges patch into list as a strategic merge does for a list
// keyed by name: an entry of the same name is replaced, new ones come first.
func mergeByName[T any](list *[]T, patch []T, name func(T) string) {
	var added []T
	for _, p := range patch {
		if i := slices.IndexFunc(*list, func(x T) bool { return name(x) == name(p) }); i >= 0 {
			(*list)[i] = p
		} else {
			added = append(added, p)
		}
	}
	*list = append(added, *list...)
}

var (
	// secretName matches variables that hold a credential themselves.
	secretName = regexp.MustCompile(`(?i)PASSWORD|TOKEN|SECRET|CREDENTIAL`)
	// fileName matches variables that name a file which must come from a
	// Secret: passwords, keys and the CAs and certificates next to them.
	fileName = regexp.MustCompile(`_FILE$|_TLS_(CA|CERT|KEY)$`)
	// urlPassword matches a URL with a password in it.
	urlPassword = regexp.MustCompile(`://[^/@\s:]*:[^/@\s]+@`)
)

// credentialProblems lists credentials a rendering does not take from a
// Secret: a credential variable set to a literal or from a ConfigMap, a
// credential file outside every Secret volume the container mounts, a
// ConfigMap holding something that looks like a credential.
func credentialProblems(objs map[string]any) []string {
	var probs []string
	for _, key := range slices.Sorted(maps.Keys(objs)) {
		switch o := objs[key].(type) {
		case *corev1.ConfigMap:
			for k, v := range o.Data {
				if (secretName.MatchString(k) && !fileName.MatchString(k)) || urlPassword.MatchString(v) {
					probs = append(probs, fmt.Sprintf("%s: %s looks like a credential; put it in a Secret", key, k))
				}
			}
		case *appsv1.Deployment:
			spec := o.Spec.Template.Spec
			secretVolumes := map[string]bool{}
			for _, v := range spec.Volumes {
				secretVolumes[v.Name] = v.Secret != nil
			}
			for _, c := range spec.Containers {
				for _, e := range c.Env {
					switch {
					case fileName.MatchString(e.Name):
						if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
							return secretVolumes[m.Name] && strings.HasPrefix(e.Value, strings.TrimSuffix(m.MountPath, "/")+"/")
						}) {
							probs = append(probs, fmt.Sprintf("%s: %s=%q is in no Secret volume the container mounts", key, e.Name, e.Value))
						}
					case secretName.MatchString(e.Name):
						if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
							probs = append(probs, fmt.Sprintf("%s: %s is not taken from a Secret (secretKeyRef or a _FILE variable)", key, e.Name))
						}
					case urlPassword.MatchString(e.Value):
						probs = append(probs, fmt.Sprintf("%s: %s holds a URL with a password", key, e.Name))
					}
				}
			}
		}
	}
	return probs
}

func TestCredentialsFromSecrets(t *testing.T) {
	for _, dir := range renderings {
		objs, err := render(dir)
		if err != nil {
			t.Fatalf("render %s: %v", dir, err)
		}
		for _, p := range credentialProblems(objs) {
			t.Errorf("%s: %s", dir, p)
		}
	}
	// The example overlay does read Redis's password from its Secret.
	objs, err := render("kubernetes/overlays/example")
	if err != nil {
		t.Fatal(err)
	}
	for role := range roles {
		d := objs["Deployment/hookstream-"+role].(*appsv1.Deployment)
		if v := containerEnv(d, objs, "HOOKSTREAM_REDIS_PASSWORD_FILE"); v == "" {
			t.Errorf("example overlay: %s reads no HOOKSTREAM_REDIS_PASSWORD_FILE", role)
		}
	}
}

// TestCredentialProblemsCatchesMistakes proves each credential check can
// fail.
func TestCredentialProblemsCatchesMistakes(t *testing.T) {
	container := func(objs map[string]any, role string) *corev1.Container {
		return &objs["Deployment/hookstream-"+role].(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
	}
	tests := []struct {
		name   string
		mutate func(objs map[string]any)
		want   string
	}{
		{"password in the ConfigMap", func(objs map[string]any) {
			objs["ConfigMap/hookstream"].(*corev1.ConfigMap).Data["HOOKSTREAM_REDIS_PASSWORD"] = "x"
		}, "ConfigMap/hookstream: HOOKSTREAM_REDIS_PASSWORD looks like a credential"},
		{"password in the URL", func(objs map[string]any) {
			objs["ConfigMap/hookstream"].(*corev1.ConfigMap).Data["HOOKSTREAM_REDIS_URL"] = "rediss://u:p@redis:6379/0"
		}, "HOOKSTREAM_REDIS_URL looks like a credential"},
		{"literal password", func(objs map[string]any) {
			c := container(objs, "fanout")
			c.Env = append(c.Env, corev1.EnvVar{Name: "HOOKSTREAM_REDIS_PASSWORD", Value: "x"})
		}, "Deployment/hookstream-fanout: HOOKSTREAM_REDIS_PASSWORD is not taken from a Secret"},
		{"file outside the mount", func(objs map[string]any) {
			c := container(objs, "deliverer")
			i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "HOOKSTREAM_REDIS_PASSWORD_FILE" })
			c.Env[i].Value = "/etc/redis-password"
		}, `HOOKSTREAM_REDIS_PASSWORD_FILE="/etc/redis-password" is in no Secret volume`},
		{"mounted from a ConfigMap", func(objs map[string]any) {
			spec := &objs["Deployment/hookstream-api"].(*appsv1.Deployment).Spec.Template.Spec
			for i := range spec.Volumes {
				spec.Volumes[i].VolumeSource = corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "hookstream"}}}
			}
		}, "Deployment/hookstream-api: HOOKSTREAM_REDIS_PASSWORD_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := render("kubernetes/overlays/example")
			if err != nil {
				t.Fatal(err)
			}
			if probs := credentialProblems(objs); len(probs) > 0 {
				t.Fatalf("unmodified overlay has problems: %q", probs)
			}
			tt.mutate(objs)
			probs := credentialProblems(objs)
			if !slices.ContainsFunc(probs, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("problems %q do not include %q", probs, tt.want)
			}
		})
	}
}

// TestStaticMembershipFromPodName: fanout and deliverer join their groups
// as static members named after their pods, and, being Deployments (pods
// renamed when replaced), leave the group on SIGTERM.
func TestStaticMembershipFromPodName(t *testing.T) {
	for _, dir := range renderings {
		objs, err := render(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, role := range []string{"fanout", "deliverer"} {
			d := objs["Deployment/hookstream-"+role].(*appsv1.Deployment)
			env := d.Spec.Template.Spec.Containers[0].Env
			i := slices.IndexFunc(env, func(e corev1.EnvVar) bool { return e.Name == "HOOKSTREAM_INSTANCE_ID" })
			if i < 0 || env[i].ValueFrom == nil || env[i].ValueFrom.FieldRef == nil || env[i].ValueFrom.FieldRef.FieldPath != "metadata.name" {
				t.Errorf("%s: %s: HOOKSTREAM_INSTANCE_ID is not the pod name (fieldRef metadata.name)", dir, role)
			}
			if v := containerEnv(d, objs, "HOOKSTREAM_LEAVE_ON_SHUTDOWN"); v != "true" {
				t.Errorf("%s: %s: HOOKSTREAM_LEAVE_ON_SHUTDOWN=%q, want true: a replaced pod's name never comes back", dir, role, v)
			}
		}
	}
}
