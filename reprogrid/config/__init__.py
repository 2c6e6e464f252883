"""The experiment config: its vocabulary and defaults (schema), the checks a JSON Schema
cannot make (checks), and the resolution of one run's complete config (resolve). The
names most code needs are here, so that `from reprogrid import config as cfg` reads as
one thing (docs/architecture.md)."""

from reprogrid.config.checks import check_config, check_finite, scale_warning
from reprogrid.config.resolve import (
                                      dataset_kind,
                                      grid_cells,
                                      grid_record,
                                      library_knobs,
                                      planned_epochs,
                                      reference_libconf,
                                      resolve_run_config,
                                      run_key,
                                      run_keys,
                                      seed_modes,
                                      uses_own_code,
)
from reprogrid.config.schema import (
                                      CHECKPOINT_INTERVAL_S,
                                      DEFAULT_MODES,
                                      LIBRARY_DEFAULTS,
                                      OPTIMIZER_DEFAULTS,
                                      SCHEMA,
                                      SOURCE_MODES,
                                      SOURCES,
                                      TRAINING_DEFAULTS,
                                      ConfigError,
                                      key_path,
                                      schema_error_message,
)
from reprogrid.config.variants import variant_names, with_variant

__all__ = ["CHECKPOINT_INTERVAL_S", "DEFAULT_MODES", "LIBRARY_DEFAULTS", "OPTIMIZER_DEFAULTS", "SCHEMA", "SOURCES",
           "SOURCE_MODES", "TRAINING_DEFAULTS", "ConfigError", "check_config", "check_finite", "dataset_kind", "grid_cells",
           "grid_record", "key_path", "library_knobs", "planned_epochs", "reference_libconf", "resolve_run_config",
           "run_key", "run_keys", "schema_error_message", "scale_warning", "seed_modes", "uses_own_code",
           "variant_names", "with_variant"]
