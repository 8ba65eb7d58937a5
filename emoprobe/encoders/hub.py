"""Load a transformers model from the hub, or build its random-init twin without the hub.

The random twin needs the architecture only. When the hub cannot be reached, it is built from the
config class's defaults given at registration (`offline_config`), which for the registered
checkpoints ARE their architecture (same compute as the real model); the preprocessing likewise
(`offline_processor`). This is how every hub encoder's code path runs and is tested offline.
"""

from __future__ import annotations

import copy

import torch

from ..errors import HubUnavailableError


def load_transformers_model(model_id: str, random_init: bool = False, offline_config=None,
                            offline_processor=None, processor: str = "AutoFeatureExtractor", seed: int = 0,
                            auto_model: str = "AutoModel", config=None):
    """(model in eval mode, processor, where the config came from).

    offline_config / offline_processor: (transformers class name, keyword arguments) used when the
    hub is unreachable: the config only for random_init, the processor always. config: a config
    object to build with random weights instead (the tests' tiny models).
    """
    import transformers as tf

    source = "config given by the caller" if config is not None else f"{model_id} (pretrained weights)"
    if random_init and config is None:
        try:
            config = tf.AutoConfig.from_pretrained(model_id)
            source = f"{model_id} config"
        except OSError:
            if offline_config is None:
                raise
            cls, kwargs = offline_config
            config = getattr(tf, cls)(**kwargs)
            source = f"{cls}({kwargs or ''}) defaults (hub unreachable; same architecture as {model_id})"
    try:
        extractor = getattr(tf, processor).from_pretrained(model_id)
    except OSError:
        if offline_processor is None:
            raise
        cls, kwargs = offline_processor
        extractor = getattr(tf, cls)(**kwargs)
    model_cls = getattr(tf, auto_model)
    if config is not None:  # random weights: a control with the same architecture and compute
        torch.manual_seed(seed)
        # a copy: the model keeps its config, and encoders adjust it (e.g. a video model's num_frames);
        # the caller's object (one tiny config shared by several encoders in the tests) must not change
        model = model_cls.from_config(copy.deepcopy(config))
    else:
        try:
            model = model_cls.from_pretrained(model_id)
        except OSError as err:
            raise HubUnavailableError(f"{model_id}: pretrained weights not available from the model hub "
                                      f"({str(err).splitlines()[0]}); its random twin runs offline") from err
    return model.eval(), extractor, source
