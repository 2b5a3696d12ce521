"""Random networks of the scorer's classes (DINOv2, CLIP, SqueezeNet for LPIPS, torch-fidelity's InceptionV3
for FID), small, saved where the metrics read real weights: the tests and benchmarks score through the code
path real weights take (no weights can be downloaded there), as `make-model --preset tiny` does for SD."""

from __future__ import annotations

from pathlib import Path
from unittest import mock


def write_random_networks(root) -> dict:
    """Writes them under `root`; returns the `evaluation:` settings that point at them (dino, clip, clip_iqa,
    torch_hub) and torch_home (a $TORCH_HOME whose hub/checkpoints/ holds the torch files)."""
    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
    import torchvision
    from transformers import (BitImageProcessor, CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor,
                              CLIPTokenizer, Dinov2Config, Dinov2Model)

    from ..engines.presets import write_clip_tokenizer
    from .fid import INCEPTION_FILE
    from .lpips import SQUEEZENET_FILE

    root = Path(root)
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             image_size=28, patch_size=14)).save_pretrained(root / "dino")
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 28, "width": 28},
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(root / "dino")
    vocab = write_clip_tokenizer(root / "tokenizer")
    CLIPModel(CLIPConfig(
        # pooled at the tokenizer's end token (the last id): with CLIP's default id every text pooled token 0
        text_config=dict(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=vocab - 2,
                         eos_token_id=vocab - 1, pad_token_id=vocab - 1),
        vision_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)).save_pretrained(root / "clip")
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=CLIPTokenizer.from_pretrained(root / "tokenizer")).save_pretrained(root / "clip")
    torch_home = root / "torch"
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), checkpoints / SQUEEZENET_FILE)
    # torch-fidelity's InceptionV3 built without its weights (it would download them)
    with mock.patch.object(tf_inception, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None):
        inception = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["64"])
    torch.save(inception.state_dict(), checkpoints / INCEPTION_FILE)
    return dict(dino=str(root / "dino"), clip=str(root / "clip"), clip_iqa=str(root / "clip"),
                torch_hub=str(torch_home / "hub"), torch_home=torch_home)
