"""Distillation losses and the training-loop hook that combines them.

- logits: KL between temperature-softened distributions (x T^2, Hinton et al.), mixed with
  cross-entropy on the hard labels; with three or more classes both sides' logits are first
  z-scored per example (Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024);
- hidden states: MSE between mapped layers, through a learned projection when widths differ;
- attention: KL between attention distributions of mapped layers, head by head when the head
  counts match, else between head-averaged maps.

The teacher's logits come from a cache (computed once per data and teacher), and so do its hidden
states when a `HiddenCache` is given (fp16, the mapped layers only in memory); attention maps, too
large to keep for every example, come from the live teacher when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from slimtune.data.tokenize import UNLABELED


@dataclass(frozen=True)
class LossSpec:
    """What the student learns from."""

    temperature: float = 2.0
    """Softening of both distributions in the logit loss."""
    standardize: bool = True
    """Z-score each example's logits, teacher's and student's, before softening: the student learns
    the teacher's ranking of the classes, not its confidence. A teacher that is right but unsure
    on rare classes otherwise pulls its student to the frequent ones (README, Distil: raw against
    standardized logits in `python bench/big_teacher.py`). Skipped with two classes, where a
    z-score keeps only the sign."""
    alpha: float = 0.5
    """Weight of the teacher's soft targets; 1 - alpha goes to the hard labels."""
    hidden_weight: float = 0.0
    """Weight of the hidden-state MSE (0: off)."""
    attention_weight: float = 0.0
    """Weight of the attention KL (0: off)."""
    layer_map: tuple[int, ...] | None = None
    """Teacher layer for each student layer (0-based); None: the pruned layers' origin, or uniform."""


def _zscore(logits: torch.Tensor) -> torch.Tensor:
    return (logits - logits.mean(-1, keepdim=True)) / (logits.std(-1, keepdim=True) + 1e-6)


def logit_loss(student, teacher, labels, temperature: float, alpha: float, standardize: bool = False) -> torch.Tensor:
    """Mean over the batch of alpha * KL * T^2 + (1 - alpha) * cross-entropy per labelled row, and of
    KL * T^2 alone per transfer row (label UNLABELED): it has no label to mix in."""
    t = temperature
    s_soft, t_soft = student.float(), teacher.float()
    if standardize and student.shape[-1] > 2:
        s_soft, t_soft = _zscore(s_soft), _zscore(t_soft)
    soft = F.kl_div(F.log_softmax(s_soft / t, -1), F.softmax(t_soft / t, -1), reduction="none").sum(-1) * t * t
    labelled = labels != UNLABELED
    hard = F.cross_entropy(student.float(), labels, ignore_index=UNLABELED, reduction="none")  # 0 where unlabelled
    per_row = torch.where(labelled, alpha * soft + (1 - alpha) * hard, soft)
    return per_row.mean()


def hidden_loss(student_states, teacher_states, mask) -> torch.Tensor:
    """Mean over mapped layers of the MSE over real (not padding) token positions."""
    keep = mask.bool()
    losses = [F.mse_loss(s[keep].float(), t[keep].float()) for s, t in zip(student_states, teacher_states)]
    return torch.stack(losses).mean()


def attention_loss(student_maps, teacher_maps, mask) -> torch.Tensor:
    """KL(teacher || student) of each real query's attention row, averaged over layers."""
    losses = []
    rows = mask.bool()
    for s, t in zip(student_maps, teacher_maps):
        if s.shape[1] != t.shape[1]:  # different head counts: compare head-averaged maps
            s, t = s.mean(1, keepdim=True), t.mean(1, keepdim=True)
        s = s.permute(0, 2, 1, 3)[rows].float().clamp_min(1e-9)  # (real queries, heads, keys)
        t = t.permute(0, 2, 1, 3)[rows].float()
        losses.append((t * (t.clamp_min(1e-9).log() - s.log())).sum(-1).mean())
    return torch.stack(losses).mean()


class DistillModule(nn.Module):
    """The student plus the projections that hidden-state distillation trains along with it.

    Its forward returns what the losses need; `.logits` alone is what evaluation reads."""

    def __init__(self, student, teacher_hidden: int, spec: LossSpec, layer_map: list[int]):
        super().__init__()
        self.student = student
        self.config = student.config
        self.layer_map = layer_map
        self.want_hidden = spec.hidden_weight > 0
        self.want_attention = spec.attention_weight > 0
        width = student.config.hidden_size
        self.projections = nn.ModuleList(
            [nn.Linear(width, teacher_hidden) for _ in layer_map] if self.want_hidden and width != teacher_hidden else []
        )

    def forward(self, input_ids, attention_mask, **_):
        out = self.student(input_ids=input_ids, attention_mask=attention_mask,
                           output_hidden_states=self.want_hidden, output_attentions=self.want_attention)
        hidden = []
        if self.want_hidden:
            hidden = list(out.hidden_states[1:])  # [0] is the embeddings
            if len(self.projections):
                hidden = [p(h) for p, h in zip(self.projections, hidden)]
        return SimpleNamespace(logits=out.logits, hidden=hidden, attentions=out.attentions)


class DistillLoss:
    """`loss_fn` for the training loop: cached teacher logits (and hidden states when a cache is
    given), the live teacher for the rest."""

    def __init__(self, spec: LossSpec, layer_map: list[int], teacher_logits: torch.Tensor | None = None,
                 teacher=None, teacher_split=None, teacher_pad_id: int | None = None, teacher_hidden=None):
        self.spec = spec
        self.layer_map = layer_map
        self.teacher_logits = teacher_logits
        self.teacher = teacher
        self.teacher_split = teacher_split  # teacher-tokenized training texts, by example index
        self.teacher_pad_id = teacher_pad_id
        self.teacher_hidden = teacher_hidden if spec.hidden_weight > 0 else None  # a HiddenCache
        self.live_hidden = spec.hidden_weight > 0 and self.teacher_hidden is None
        self.needs_live = teacher_logits is None or self.live_hidden or spec.attention_weight > 0

    def _live(self, batch, device):
        from slimtune.data.tokenize import PadCollator

        if self.teacher_split is not None:
            rows = [self.teacher_split[i] for i in batch["index"].tolist()]
            t_batch = {k: v.to(device) for k, v in PadCollator(self.teacher_pad_id)(rows).items()}
        else:
            t_batch = batch
        self.teacher.to(device).eval()
        with torch.no_grad():
            return self.teacher(input_ids=t_batch["input_ids"], attention_mask=t_batch["attention_mask"],
                                output_hidden_states=self.live_hidden,
                                output_attentions=self.spec.attention_weight > 0)

    def __call__(self, model, batch) -> torch.Tensor:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        device = out.logits.device
        live = self._live(batch, device) if self.needs_live else None
        if self.teacher_logits is not None:
            target = self.teacher_logits.index_select(0, batch["index"].cpu()).to(device)
        else:
            target = live.logits
        s = self.spec
        loss = logit_loss(out.logits, target, batch["labels"], s.temperature, s.alpha, s.standardize)
        # hidden states and attention maps: of the labelled rows only (the transfer set's hidden
        # states are not cached, and it teaches through the logits alone)
        rows = (batch["labels"] != UNLABELED).nonzero().flatten()
        if not (s.hidden_weight > 0 or s.attention_weight > 0):
            return loss
        if not len(rows):  # every row unlabelled: the projections still take part (DDP wants a gradient for each)
            return loss + 0.0 * sum(h.float().sum() for h in out.hidden)
        # each labelled row weighs what it would in a fully labelled batch, whatever the batch's mix
        share = len(rows) / len(batch["labels"])
        mask = batch["attention_mask"][rows]
        if s.hidden_weight > 0:
            if self.teacher_hidden is not None:
                teacher_states = [h.to(device) for h in self.teacher_hidden.batch(batch["index"][rows], mask, self.layer_map)]
            else:
                teacher_states = [live.hidden_states[t + 1][rows] for t in self.layer_map]
            loss = loss + share * s.hidden_weight * hidden_loss([h[rows] for h in out.hidden], teacher_states, mask)
        if s.attention_weight > 0:
            teacher_maps = [live.attentions[t][rows] for t in self.layer_map]
            loss = loss + share * s.attention_weight * attention_loss([a[rows] for a in out.attentions], teacher_maps,
                                                                      mask)
        return loss
