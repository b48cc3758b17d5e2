"""Learned structured pruning: hard-concrete (L0) gates over attention heads, FFN neurons and whole
layers, trained with distillation from the teacher and a Lagrangian term that brings the
expected latency to a target; then the gates become physical removal.

- Gates (Louizos et al. 2018): each unit has a learnable `log_alpha`; training samples a
  stretched, clipped concrete variable z in [0, 1] (exactly 0 or 1 with finite probability), so
  P(z > 0) is differentiable; evaluation uses the deterministic gate.
- Where they act: through the family adapter, a pre-hook on the attention output projection scales
  each head's slice of its input, one on the FFN's down projection each neuron, and a hook on the
  layer blends its output with its input (z = 0: the layer is skipped, exactly what dropping it
  does). No family checks here.
- Cost: the latency model of the target runtime (`fixed + per layer (c0 + per_head * heads +
  per_neuron * neurons)`), so the cost is measured latency, not FLOPs (ZipLM, Kurtic et al.
  2023), applied to the shape `decide` would cut now: each kept layer's expected heads and
  neurons (at least one of each, as a kept layer keeps) count in full. (Priced as the expectation
  of the sampled shape, the gates met a target on paper that the shape they stood for missed.) A
  layer gate is pulled by the layer's own overhead (c0) only, not by its units' cost: Adam moves
  every gate at about its rate whatever the size of its gradient, and the distillation signal on a
  layer gate is weak (the residual carries the input past a skipped layer), so charged the whole
  layer the layer gates closed first and whole layers went where thinning them kept more accuracy.
  A layer still goes when distillation lets its gate close, or when `fit` finds it down to one
  head and neuron.
- Constraint: a pressure p times the expected latency ratio r to the model's own, toward a target
  t ramped from where the gates start to 1 / speed-up over the first half of training (as CoFi,
  Xia et al. 2022). p is a multiplier updated by dual ascent outside the optimizer, multiplicatively
  (p *= exp(step * clip((r - t) / t, -1, 1))): it grows while r misses t and shrinks once r is
  below, so its scale, which depends on how hard distillation holds the units open, is found as it
  goes (trained by Adam, it grew by a fixed amount per step and the gates ended far above the
  target). The gates keep a constant rate. They lag the ramp (p must first grow past what holds
  each unit open), and once they move they keep moving for about ten steps after the push ends
  (Adam's momentum): pulled until r met t they ended well below it. So the pull stops while the
  gates, at their present pace, would be below the present t within LEAD steps, and resumes if they
  settle above. (Known limits, left as measured: during the ramp t itself moves, so gates that
  follow it exactly look ahead of it and the pull lags the ramp by about LEAD steps; the pressure
  keeps rising while the pull is off and r is above t; a layer gate crossing 0.5 moves r at once,
  which the pace reads as speed for a few steps.)
- Rounding: the gates' shape is then fitted to the target (`fit`): the lowest-scored heads and
  neurons go (whole layers once a layer is down to one of each) until the predicted latency is at
  most the target, or the best-scored closed ones come back while it stays under. The gates decide
  which units go, how they spread over layers and, within a few percent, how many; `fit` rounds.
  The gates' own shape before `fit` is recorded (`gates_ms` in the `pruned` record) and
  `bench/learned.py` prints it against the target, beside the cheap recipe that skips the gates
  (`rank_by`: Taylor scores, the same `fit`, the same distillation).

The gates are ordinary parameters of `GatedModel` and the pressure a buffer: the training loop, its
checkpoints and Ray Train's DDP handle them like any weight (every worker sees the same gates, so
updates the pressure alike). The gates' pace (for the stop rule) is not checkpointed: after a
resume it is measured again from the next steps.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import nn

from slimtune.models.families import family_of

BETA, LOW, HIGH = 2 / 3, -0.1, 1.1  # the hard-concrete temperature and stretch of Louizos et al.
# loss per unit of latency ratio at the start: high enough that the gates follow the ramp from the
# first steps (they move at most their rate a step, so a late start is never made up in a short
# run); being ahead of the target costs nothing (the pull stops), and dual ascent finds the rest
INITIAL_PRESSURE, PRESSURE_RANGE = 30.0, (1e-3, 1e4)
LEAD = 10  # steps ahead the constraint looks (see GatedModel.penalty)


class HardConcrete(nn.Module):
    """`n` gates; `init_keep` is each gate's initial probability of being open."""

    def __init__(self, n: int, init_keep: float = 0.9):
        super().__init__()
        # P(z > 0) = sigmoid(log_alpha - BETA * log(-LOW / HIGH)): start with the gates open
        start = math.log(init_keep / (1 - init_keep)) + BETA * math.log(-LOW / HIGH)
        self.log_alpha = nn.Parameter(torch.full((n,), start))

    def keep_prob(self) -> torch.Tensor:
        return torch.sigmoid(self.log_alpha - BETA * math.log(-LOW / HIGH))

    def forward(self) -> torch.Tensor:
        if self.training:
            u = torch.rand_like(self.log_alpha).clamp(1e-6, 1 - 1e-6)
            s = torch.sigmoid((u.log() - (1 - u).log() + self.log_alpha) / BETA)
        else:
            s = torch.sigmoid(self.log_alpha)
        return (s * (HIGH - LOW) + LOW).clamp(0.0, 1.0)

    def keep(self, at_least: int = 1) -> list[int]:
        """Units to keep: as many as the gates expect open (at least `at_least`), by log_alpha."""
        count = max(at_least, round(float(self.keep_prob().detach().sum())))
        return sorted(torch.topk(self.log_alpha.detach(), min(count, len(self.log_alpha))).indices.tolist())


class GatedModel(nn.Module):
    """A classifier with gates on its heads, FFN neurons and layers. Its forward returns the model's
    output; `penalty()` the Lagrangian term for the current step."""

    def __init__(self, model, latency, target_ms: float, total_steps: int, ramp: float = 0.5,
                 precision: str = "fp32", hidden: bool = False):
        super().__init__()
        self.model = model
        self.hidden = hidden  # return every layer's output too, for layer-wise distillation
        self.config = model.config
        self.family = family_of(model)
        layers = self.family.layer_list(model)
        self.heads = nn.ModuleList(HardConcrete(self.family.num_heads(layer)) for layer in layers)
        self.neurons = nn.ModuleList(HardConcrete(self.family.ffn_width(layer)) for layer in layers)
        self.layers = nn.ModuleList(HardConcrete(1, init_keep=0.95) for _ in layers)
        self.register_buffer("pressure", torch.tensor(INITIAL_PRESSURE))  # checkpointed with the rest
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.latency, self.precision, self.terms = latency, precision, latency.terms[precision]
        # ratios are to this model's own predicted latency, ungated
        self.full_ms = latency.predict([(len(h.log_alpha), len(f.log_alpha))
                                        for h, f in zip(self.heads, self.neurons)], precision)
        self.target_ratio, self.total_steps, self.ramp = target_ms / self.full_ms, max(1, total_steps), ramp
        with torch.no_grad():  # the ramp starts where the gates start (not at 1): no early push to open them
            self.start_ratio = float(self.expected_ms()) / self.full_ms
        self._z: dict = {}
        self._last, self._velocity = None, 0.0
        self._hooks = []
        self.trace: list[dict] = []
        for i, layer in enumerate(layers):
            head_size = self.family.head_size(layer)
            self._hooks.append(self.family.head_parts(layer)[-1].module.register_forward_pre_hook(
                self._scale_input(("heads", i), head_size)))
            self._hooks.append(self.family.ffn_parts(layer)[-1].module.register_forward_pre_hook(
                self._scale_input(("neurons", i), 1)))
            self._hooks.append(layer.register_forward_hook(self._blend(i), with_kwargs=True))

    def _scale_input(self, key, unit: int):
        def hook(module, args):
            z = self._z.get(key)
            if z is None:
                return None
            x = args[0]
            scaled = (x.unflatten(-1, (-1, unit)) * z.to(x.dtype).unsqueeze(-1)).flatten(-2)
            return (scaled,) + tuple(args[1:])
        return hook

    def _blend(self, i: int):
        def hook(module, args, kwargs, output):
            z = self._z.get(("layer", i))
            if z is None:
                return None
            before = args[0] if args else kwargs["hidden_states"]
            out = output[0] if isinstance(output, tuple) else output
            mixed = z.to(out.dtype) * out + (1 - z.to(out.dtype)) * before
            return (mixed,) + tuple(output[1:]) if isinstance(output, tuple) else mixed
        return hook

    def forward(self, input_ids, attention_mask, **kwargs):
        self._z = {}
        for i, (h, f, g) in enumerate(zip(self.heads, self.neurons, self.layers)):
            self._z[("heads", i)], self._z[("neurons", i)], self._z[("layer", i)] = h(), f(), g()
        if self.training:
            self.step += 1
        if not self.hidden:
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return SimpleNamespace(logits=out.logits, hidden=list(out.hidden_states[1:]), attentions=None)

    def expected_ms(self) -> torch.Tensor:
        """The predicted latency of the shape `decide` would cut now, differentiable in the gates:
        each layer's expected heads and neurons (at least one of each, as a kept layer keeps),
        counted in full while its gate is at 0.5 or more. A layer gate is pulled by the layer's
        own overhead c0 only (see the module's docstring)."""
        t = self.terms
        total = self.pressure.new_tensor(t["fixed"])
        one = self.pressure.new_tensor(1.0)
        for h, f, g in zip(self.heads, self.neurons, self.layers):
            units = (t["per_head"] * torch.maximum(h.keep_prob().sum(), one)
                     + t["per_neuron"] * torch.maximum(f.keep_prob().sum(), one))
            keep = g.keep_prob()[0]
            total = total + keep * t["c0"] + (keep.detach() >= 0.5).to(total.dtype) * units
        return total

    def target(self) -> float:
        """The latency ratio asked for now: from where the gates started down to the target over
        the ramp, then held."""
        done = min(1.0, float(self.step) / (self.ramp * self.total_steps))
        return self.start_ratio + done * (self.target_ratio - self.start_ratio)

    def pressure_step(self) -> float:
        """The most the log of the pressure moves in one step (at a 100% miss; in proportion below):
        e^10 over the whole run, at most e^0.16 a step. Much faster, it winds up while the gates are
        still on their way (they cross at the gate rate whatever the pull) and then shuts every unit
        at once."""
        return min(0.16, 10.0 / self.total_steps)

    def penalty(self) -> torch.Tensor:
        ratio = self.expected_ms() / self.full_ms
        target = self.target()
        if self.training and torch.is_grad_enabled():  # one dual-ascent step per training step
            with torch.no_grad():
                if self._last is not None:
                    self._velocity = 0.8 * self._velocity + 0.2 * (float(ratio) - self._last)  # per step
                self._last = float(ratio)
                miss = max(-1.0, min(1.0, (float(ratio) - target) / target))
                self.pressure.mul_(math.exp(self.pressure_step() * miss)).clamp_(*PRESSURE_RANGE)
                if int(self.step) % 10 == 0:  # the course of the constraint, for metrics.json
                    self.trace.append({"step": int(self.step), "expected_ms": float(ratio) * self.full_ms,
                                       "target_ms": target * self.full_ms, "pressure": float(self.pressure)})
        # the pull stops once the gates, at their present pace, would reach the target within LEAD
        # steps: Adam carries each gate on for about 1 / (1 - beta1) = 10 steps after its push ends,
        # and a pressure that pulled until the target was met left them well below it
        ahead = float(ratio.detach()) + LEAD * self._velocity
        return self.pressure * ratio * float(ahead > target)

    def gate_lr(self) -> float:
        """Far above the weights' rate: Adam moves a parameter about its rate per step, and a gate
        must be able to cross from open (log_alpha ~ 1) to shut (~ -5) well within the ramp, as not
        every gate moves from the first step. CoFi's 0.01 assumes thousands of steps; one epoch on
        2,000 rows has about 32 in its ramp."""
        return min(0.5, max(0.01, 12.0 / (self.ramp * self.total_steps)))

    def optimizer_groups(self, lr: float) -> list[dict]:
        gates = [p for m in (*self.heads, *self.neurons, *self.layers) for p in m.parameters()]
        # constant rate: decayed with the weights' they would freeze short of the target; unclipped:
        # the penalty's pull on the gates would otherwise shrink the weights' step under the norm
        return [{"params": gates, "lr": self.gate_lr(), "weight_decay": 0.0, "constant_lr": True, "clip": False}]

    def decide(self) -> list[dict | None]:
        """Per layer: None (dropped) or the heads and neurons it keeps. At least one layer stays."""
        probs = [float(g.keep_prob().detach()[0]) for g in self.layers]
        kept = [p >= 0.5 for p in probs]
        if not any(kept):
            kept[max(range(len(probs)), key=probs.__getitem__)] = True
        return [{"heads": h.keep(), "neurons": f.keep()} if keep else None
                for keep, h, f in zip(kept, self.heads, self.neurons)]

    def predicted_ms(self, decision: list[dict | None]) -> float:
        return self.latency.predict([(len(keep["heads"]), len(keep["neurons"])) for keep in decision if keep is not None],
                                    self.precision)

    def fit(self, decision: list[dict | None]) -> list[dict | None]:
        """`decision` with as many units removed or put back, in the order of the gates' scores, as
        bring its predicted latency to at most the target and as near it as one unit allows."""
        t, target = self.terms, self.target_ratio * self.full_ms
        decision = [None if keep is None else {k: set(v) for k, v in keep.items()} for keep in decision]
        cost = {"heads": t["per_head"], "neurons": t["per_neuron"]}
        units = sorted((score, kind, i, j)
                       for kind, gates in (("heads", self.heads), ("neurons", self.neurons))
                       for i, keep in enumerate(decision) if keep is not None
                       for j, score in enumerate(gates[i].log_alpha.detach().tolist()))
        ms = self.predicted_ms(decision)
        if ms > target:
            for _, kind, i, j in units:  # lowest score first; a layer keeps one head and one neuron
                keep = decision[i]
                if ms <= target:
                    break
                if j in keep[kind] and len(keep[kind]) > 1:
                    keep[kind].remove(j)
                    ms -= cost[kind]
            layers = sorted((float(g.log_alpha.detach()[0]), i) for i, g in enumerate(self.layers) if decision[i] is not None)
            for _, i in layers[:-1]:  # still above: whole layers, lowest gate first; one stays
                if ms <= target:
                    break
                ms -= t["c0"] + sum(cost[kind] * len(decision[i][kind]) for kind in cost)
                decision[i] = None
        for _, kind, i, j in reversed(units):  # best-scored closed units back while under the target
            keep = decision[i]  # (after removal too: the last head out may leave room for neurons)
            if keep is not None and j not in keep[kind] and ms + cost[kind] <= target:
                keep[kind].add(j)
                ms += cost[kind]
        return [None if keep is None else {k: sorted(v) for k, v in keep.items()} for keep in decision]

    def rank_by(self, head_scores, ffn_scores) -> list[dict]:
        """Put importance scores (one tensor per layer and kind, e.g. Taylor's) where `fit` reads
        the gates' scores, and return the whole shape for `fit` to cut from: the cheap recipe the
        trained gates are measured against. A head's Taylor score sums over 4 x head-size x width
        weights, a neuron's over 2 x width, so each kind is divided by its own mean over the model
        first: 1 is an average head or an average neuron, and `fit` ranks both kinds on one scale.
        A layer's score is the mean over its heads and neurons together, so mostly its neurons'
        (the lowest goes first when whole layers must)."""
        def normalised(scores):
            mean = torch.cat([s.float() for s in scores]).mean().clamp_min(1e-12)
            return [s.float() / mean for s in scores]

        with torch.no_grad():
            for gates, scores in ((self.heads, normalised(head_scores)), (self.neurons, normalised(ffn_scores))):
                for gate, score in zip(gates, scores):
                    gate.log_alpha.copy_(score)
            for i, gate in enumerate(self.layers):
                gate.log_alpha.fill_(float(torch.cat([self.heads[i].log_alpha, self.neurons[i].log_alpha]).mean()))
        return [{"heads": list(range(len(h.log_alpha))), "neurons": list(range(len(f.log_alpha)))}
                for h, f in zip(self.heads, self.neurons)]

    def release(self):
        """Take the hooks off and hand back the model (its weights as trained, nothing removed yet)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks, self._z = [], {}
        return self.model


def apply_decision(model, decision: list[dict | None]) -> dict:
    """Remove what the gates closed, through the family adapter; returns the record `prune` saves."""
    from slimtune.models.surgery import encoder_layers, ffn_width, keep_layers, num_heads, prune_ffn, prune_heads

    layers = encoder_layers(model)
    for i, keep in enumerate(decision):
        if keep is None:
            continue
        if len(keep["heads"]) < num_heads(layers[i], model):
            prune_heads(model, i, keep["heads"])
        if len(keep["neurons"]) < ffn_width(layers[i], model):
            prune_ffn(model, i, keep["neurons"])
    kept_layers = [i for i, keep in enumerate(decision) if keep is not None]
    if len(kept_layers) < len(decision):
        keep_layers(model, kept_layers)
    layers = encoder_layers(model)
    return {"kept_layers": kept_layers, "heads": [num_heads(layer, model) for layer in layers],
            "ffn": [ffn_width(layer, model) for layer in layers]}


def _with_penalty(distill_loss):
    def loss(model, batch):
        core = model.module if hasattr(model, "module") else model  # DDP wraps it on Ray Train
        return distill_loss(model, batch) + core.penalty()
    return loss


def measure_pair(teacher, student, seq: int, threads: int, rounds: int = 7) -> tuple[float, float]:
    """ONNX fp32 latency (ms) of teacher and student, timed in turns in one process."""
    import tempfile
    from pathlib import Path

    from slimtune.exporting.benchmark import interleaved_latency
    from slimtune.exporting.onnx_export import export_onnx

    with tempfile.TemporaryDirectory(prefix="slimtune-learned-") as tmp:
        files = {name: export_onnx(model.eval(), Path(tmp) / f"{name}.onnx")
                 for name, model in (("teacher", teacher), ("student", student))}
        ms = interleaved_latency(files, seq=seq, threads=threads, rounds=rounds, per_round=10)
    return ms["teacher"], ms["student"]


def learn_and_cut(model, latency, target_ms: float, loss, train_split, val_split, spec, *, num_labels: int,
                  pad_token_id: int, train_fn=None, hidden: bool = False, scores: str = "gates"):
    """Train gates on `model` (in place, with its weights) for `spec.epochs` towards `target_ms` of
    predicted latency, then remove what they closed. Returns (the kept shape with `gates_ms`, the
    predicted latency of the gates' own shape before `fit`; the gate training's record; the
    constraint's course every 10 steps: expected and target ms, pressure). `train_fn` as the search
    passes it (default: the plain loop here); `hidden`: the gated model returns every layer's output
    too (`loss` distils them). `scores="taylor"`: no gate training (the record is None): Taylor
    scores on 8 labelled batches rank the units and `fit` alone cuts to the target."""
    from dataclasses import replace

    from slimtune import log
    from slimtune.train.loop import train

    steps = math.ceil(len(train_split) / spec.batch_size) * spec.epochs
    if spec.max_steps:  # the ramp, rate and pressure are sized for the steps that will run
        steps = min(steps, spec.max_steps)
    if scores == "taylor":
        from slimtune.pruning.importance import calibration_batches, taylor_scores
        from slimtune.train.loop import cross_entropy_loss

        batches = calibration_batches(train_split, pad_token_id, spec.batch_size, 8, spec.seed)
        head_scores, ffn_scores = taylor_scores(model, batches, cross_entropy_loss)
        gated = GatedModel(model, latency, target_ms, steps)
        decision, record = gated.rank_by(head_scores, ffn_scores), None
        log.info(f"Taylor scores, no gate training: the whole shape {gated.predicted_ms(decision):.2f} ms, "
                 f"target {target_ms:.2f} ms (predicted, fp32)")
    else:
        gated = GatedModel(model, latency, target_ms, steps, hidden=hidden)
        log.info(f"learning gates for {spec.epochs} epoch(s): expected latency "
                 f"{float(gated.expected_ms().detach()):.2f} ms, target {target_ms:.2f} ms (predicted, fp32)")
        record = (train_fn or train)(gated, train_split, val_split, replace(spec, select_metric="last"),  # an earlier
                                     num_labels=num_labels, pad_token_id=pad_token_id,                  # epoch is bigger
                                     loss_fn=_with_penalty(loss))
        decision = gated.decide()
    gates_ms = gated.predicted_ms(decision)
    fitted = gated.fit(decision)
    log.info(f"{'the gates' if record else 'the scores'}' shape {gates_ms:.2f} ms "
             f"({gates_ms / target_ms:.2f} x the target), fitted to the target {gated.predicted_ms(fitted):.2f} ms "
             "(predicted)")
    kept = {**apply_decision(gated.release(), fitted), "gates_ms": gates_ms}
    log.info(f"kept layers {kept['kept_layers']}, heads {kept['heads']}, FFN {kept['ffn']}")
    return kept, record, gated.trace
