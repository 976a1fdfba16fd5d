"""The world model and its LightningModule: shapes of DESIGN.md, causal prediction, rollout
consistent with predict, one composition for pixels and vectors, the weighted loss."""

import pytest
import torch

from envs.meta import ModelMeta
from worldmodel.module import JEPAModule, LossConfig, OptimConfig, cosine_after_constant
from worldmodel.regularisers import RegulariserConfig
from worldmodel.world_model import JEPAWorldModel, ModelConfig

SMALL = ModelConfig(feature_dim=32, projector_dim=32, latent_dim=8, predictor_hidden=32)


def _model(encoder="conv", history=3, seed=0, predictor="mlp"):
    torch.manual_seed(seed)
    cfg = ModelConfig(**{**SMALL.__dict__, "encoder": encoder, "predictor": predictor,
                              "predictor_layers": 2})
    model = JEPAWorldModel(cfg, (32, 32, 3), action_dim=4, history=history)
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
    cfg = ModelConfig(**{**SMALL.__dict__, "predictor": predictor})
    model = JEPAWorldModel(cfg, (32, 32, 3), action_dim=4, history=3)
    z = torch.randn(2, 4, 8)
    torch.testing.assert_close(model.predict(z, torch.randn(2, 4, 4)), z)


def test_module_losses_are_the_named_weights_times_their_terms():
    meta = ModelMeta((32, 32, 3), action_dim=2, frameskip=2, history=2)
    torch.manual_seed(0)
    loss = LossConfig(prediction_weight=2.0, regulariser_weight=0.1, rollout_weight=0.5,
                      regulariser=RegulariserConfig(num_directions=16))
    module = JEPAModule.from_configs(SMALL, loss, OptimConfig(), meta, 10)
    batch = {"obs": torch.randint(0, 256, (6, 4, 32, 32, 3), dtype=torch.uint8),
             "actions": torch.randn(6, 4, 4)}
    out, z = module.losses(batch)
    assert z.shape == (6, 4, 8)
    assert set(out) >= {"loss", "pred_loss", "sigreg", "rollout_loss"}
    expected = 2.0 * out["pred_loss"] + 0.1 * out["sigreg"] + 0.5 * out["rollout_loss"]
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    assert module.world_model.encoder.head.weight.grad.abs().sum() > 0


def test_one_composition_reads_vectors_with_the_synthetic_protocol():
    """MLP encoder straight to the latent, identity predictor, two views: the loss is
    lam * pooled SIGReg + (1 - lam) * alignment when prediction_weight = (1 - lam) / 4."""
    cfg = ModelConfig(encoder="mlp", encoder_width=16, encoder_layers=2, projector="none",
                      latent_dim=3, predictor="identity")
    lam = 0.3
    loss = LossConfig(prediction_weight=(1 - lam) / 4, regulariser_weight=lam,
                      regulariser=RegulariserConfig(pooled=True, num_directions=16))
    module = JEPAModule.from_configs(cfg, loss, OptimConfig(), ModelMeta((3,)), 10,
                                     cpu_bf16=False)
    assert not list(module.world_model.projector.parameters())
    x = torch.randn(32, 2, 3)
    out, z = module.losses({"obs": x, "actions": torch.zeros(32, 2, 0)})
    torch.testing.assert_close(z, module.world_model.encoder(x.flatten(0, 1)).view(32, 2, 3))
    pooled = module.regulariser.sigreg(z.reshape(-1, 3), step=0)
    torch.testing.assert_close(out["loss"], lam * pooled + (1 - lam) * out["align"])


def test_encoders_refuse_observations_of_the_other_kind():
    with pytest.raises(ValueError, match="reads square RGB frames"):
        JEPAWorldModel(SMALL, (5,), action_dim=0)
    with pytest.raises(ValueError, match="reads flat vectors"):
        JEPAWorldModel(ModelConfig(encoder="mlp", projector="none"), (32, 32, 3), action_dim=0)
    with pytest.raises(ValueError, match="unknown model.encoder 'resnet'"):
        JEPAWorldModel(ModelConfig(encoder="resnet"), (32, 32, 3), action_dim=0)


def test_legacy_loss_dicts_of_older_pixel_checkpoints_still_load():
    old = {"lam": 0.09, "num_directions": 1024, "num_knots": 17, "t_max": 3.0, "bf16": True,
           "rollout_weight": 1.0}
    cfg = LossConfig.from_dict(old)
    assert (cfg.prediction_weight, cfg.regulariser_weight, cfg.rollout_weight) == (1.0, 0.09, 1.0)
    assert cfg.regulariser.name == "sigreg" and cfg.regulariser.num_directions == 1024
    assert not cfg.regulariser.pooled


@pytest.mark.parametrize("cpu_bf16", [False, True])
def test_cpu_bf16_autocasts_the_model_only_where_the_cpu_has_native_bf16(cpu_bf16):
    from worldmodel.utils import native_bf16

    if cpu_bf16 and not native_bf16("cpu"):
        pytest.skip("this CPU has no native bf16: the bf16 path was not run, only fp32")
    meta = ModelMeta((32, 32, 3), action_dim=2, history=2)
    module = JEPAModule.from_configs(SMALL, LossConfig(), OptimConfig(), meta, 10,
                                     cpu_bf16=cpu_bf16)
    seen = []
    module.world_model.encoder.head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    batch = {"obs": torch.randint(0, 256, (4, 3, 32, 32, 3), dtype=torch.uint8),
             "actions": torch.randn(4, 3, 2)}
    out, z = module.losses(batch)
    assert seen == [torch.bfloat16 if cpu_bf16 else torch.float32]
    assert z.dtype == torch.float32 and torch.isfinite(out["loss"])


def test_learning_rate_schedule_is_constant_then_cosine_to_zero():
    assert cosine_after_constant(0, 100, 0.5) == 1.0
    assert cosine_after_constant(49, 100, 0.5) == 1.0
    assert cosine_after_constant(75, 100, 0.5) == pytest.approx(0.5)
    assert cosine_after_constant(100, 100, 0.5) == pytest.approx(0.0)


def test_loss_parts_are_logged_on_logging_steps_and_the_last():
    """The loss itself is logged every step; its parts, which cost Lightning ~0.7 ms each per
    call, only where the logger writes."""
    from types import SimpleNamespace

    module = JEPAModule.from_configs(ModelConfig(encoder="mlp", projector="none"), LossConfig(),
                                     OptimConfig(), ModelMeta((2,)), max_steps=7)
    module._trainer = SimpleNamespace(global_step=0, max_steps=7, log_every_n_steps=3)
    logged = []
    for step in range(7):
        module._trainer.global_step = step
        logged.append(module._logs_this_step())
    assert logged == [False, False, True, False, False, True, True]  # steps 3, 6 and the last
