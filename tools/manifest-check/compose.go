package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
)

// placeholder is the value given to a variable the file requires
// (`${VAR:?message}`) and the environment does not set.
const placeholder = "manifest-check-placeholder-value"

// validateCompose loads a Compose file as `docker compose config` would:
// schema validation, interpolation, normalisation and consistency checks.
//
// The environment is not the caller's: only the variables the file itself
// requires are given a placeholder (found by loading until none is
// missing), so `${VAR:-default}` keeps its default and the result does not
// depend on what happens to be exported in the shell running the check.
func validateCompose(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	env := types.Mapping{}
	for {
		project, err := loadCompose(abs, env)
		var missing *template.MissingRequiredError
		if errors.As(err, &missing) {
			if _, given := env[missing.Variable]; given {
				return err
			}
			env[missing.Variable] = placeholder
			continue
		}
		if err != nil {
			return err
		}
		return checkBuildContexts(project)
	}
}

func loadCompose(path string, env types.Mapping) (*types.Project, error) {
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(path),
		ConfigFiles: []types.ConfigFile{{Filename: path}},
		Environment: env,
	}
	return loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("manifest-check", true)
	})
}

// checkBuildContexts: every service built here has its context and
// Dockerfile, which the loader does not look for (`docker compose config`
// does not either; `docker compose build` would fail on them).
func checkBuildContexts(project *types.Project) error {
	var problems []string
	names := make([]string, 0, len(project.Services))
	for name := range project.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		build := project.Services[name].Build
		if build == nil {
			continue
		}
		info, err := os.Stat(build.Context)
		if err != nil || !info.IsDir() {
			problems = append(problems, fmt.Sprintf("service %q: build context %s is not a directory", name, build.Context))
			continue
		}
		dockerfile := build.Dockerfile
		if dockerfile == "" {
			dockerfile = "Dockerfile"
		}
		if build.DockerfileInline == "" {
			if !filepath.IsAbs(dockerfile) {
				dockerfile = filepath.Join(build.Context, dockerfile)
			}
			if _, err := os.Stat(dockerfile); err != nil {
				problems = append(problems, fmt.Sprintf("service %q: no Dockerfile at %s", name, dockerfile))
			}
		}
	}
	return joinProblems(problems)
}

func joinProblems(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	msg := problems[0]
	for _, p := range problems[1:] {
		msg += "\n" + p
	}
	return errors.New(msg)
}
