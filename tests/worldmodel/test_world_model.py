"""The pixel world model: shapes of DESIGN.md, causal prediction, rollout consistent with predict."""

import pytest
import torch

from worldmodel.world_model import JEPAWorldModel, WorldModelConfig

SMALL = WorldModelConfig(feature_dim=32, projector_dim=32, latent_dim=8, predictor_hidden=32)


def _model(encoder="conv", history=3, seed=0, predictor="mlp"):
    torch.manual_seed(seed)
    cfg = WorldModelConfig(**{**SMALL.__dict__, "encoder": encoder, "predictor": predictor,
                              "predictor_layers": 2})
    model = JEPAWorldModel(cfg, image_size=32, action_dim=4, history=history)
    with torch.no_grad():  # leave the zero-initialised "no change" start: a non-trivial map
        for p in model.predictor.parameters():
            if not p.any():
                p.normal_(0, 0.1)
    return model.eval()


@pytest.mark.parametrize("encoder", ["conv", "deep_conv", "keypoints", "vit"])
def test_encode_shapes(encoder):
    model = _model(encoder)
    pixels = torch.randint(0, 256, (2, 5, 32, 32, 3), dtype=torch.uint8)
    assert model.encode(pixels).shape == (2, 5, 8)
    with pytest.raises(ValueError, match="uint8"):
        model.encode(pixels.float())


@pytest.mark.parametrize("predictor", ["mlp", "transformer"])
def test_predict_is_causal(predictor):
    model = _model(history=6, predictor=predictor)
    z, a = torch.randn(3, 6, 8), torch.randn(3, 6, 4)
    out = model.predict(z, a)
    assert out.shape == (3, 6, 8)
    for t in range(5):
        z2, a2 = z.clone(), a.clone()
        z2[:, t + 1:] += 1.0
        a2[:, t + 1:] -= 1.0
        torch.testing.assert_close(model.predict(z2, a2)[:, :t + 1], out[:, :t + 1])
        z3 = z.clone()
        z3[:, t] += 1.0
        assert not torch.allclose(model.predict(z3, a)[:, t], out[:, t])  # it does use z[t]


@pytest.mark.parametrize("predictor", ["mlp", "transformer"])
def test_rollout_is_predict_fed_with_its_own_outputs(predictor):
    model = _model(history=2, predictor=predictor)
    z_ctx, actions = torch.randn(2, 3, 8), torch.randn(2, 3 - 1 + 4, 4)
    out = model.rollout(z_ctx, actions)
    assert out.shape == (2, 3 + 4, 8)
    torch.testing.assert_close(out[:, :3], z_ctx)
    seq, h = z_ctx, model.predictor.history  # the context the predictor was trained on
    for _ in range(4):
        t = seq.shape[1]
        nxt = model.predict(seq[:, max(0, t - h):], actions[:, max(0, t - h):t])[:, -1:]
        seq = torch.cat([seq, nxt], dim=1)
    torch.testing.assert_close(out, seq)
    with pytest.raises(ValueError, match="at least T0"):
        model.rollout(z_ctx, actions[:, :1])


@pytest.mark.parametrize("predictor", ["mlp", "transformer"])
def test_fresh_predictor_predicts_no_change(predictor):
    torch.manual_seed(0)
    cfg = WorldModelConfig(**{**SMALL.__dict__, "predictor": predictor})
    model = JEPAWorldModel(cfg, image_size=32, action_dim=4, history=3)
    z = torch.randn(2, 4, 8)
    torch.testing.assert_close(model.predict(z, torch.randn(2, 4, 4)), z)


def test_module_losses_with_rollout_term_and_bf16():
    from worldmodel.module import OptimConfig
    from worldmodel.world_module import LossConfig, WorldModelModule

    meta = {"action_dim": 2, "frameskip": 2, "history": 2, "env": {"image_size": 32}}
    torch.manual_seed(0)
    module = WorldModelModule.from_configs(
        SMALL, LossConfig(num_directions=16, rollout_weight=0.5), OptimConfig(), meta, 10)
    batch = {"pixels": torch.randint(0, 256, (6, 4, 32, 32, 3), dtype=torch.uint8),
             "actions": torch.randn(6, 4, 4)}
    out = module.losses(batch)
    assert set(out) >= {"loss", "pred_loss", "sigreg", "rollout_loss"}
    expected = out["pred_loss"] + 0.1 * out["sigreg"] + 0.5 * out["rollout_loss"]
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    assert module.world_model.encoder.head.weight.grad.abs().sum() > 0
