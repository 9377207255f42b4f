"""Your own LSTM, checked by the spec: ``python -m pytest --target examples/loop_lstm.py:factory``.

``LoopLSTM`` keeps ``nn.LSTM``'s constructor (parameters, their names, default initialisation,
argument checks) and replaces its computation by a Python loop over time steps, layers and
directions: the shape of a custom fused kernel or a port to another framework. What it does not
do (other kinds of layer, the cells, projections, packed sequences), it declines, and the spec
reports those tests as not applicable.
"""

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from rnnspec.targets import NotApplicable


def factory(kind, input_size, hidden_size, **options):
    """The module the spec checks: ``kind`` "lstm" only; ``options`` are nn.LSTM's keyword arguments."""
    if kind != "lstm":
        raise NotImplementedError(f"LoopLSTM is an LSTM, not {kind}")
    if options.get("proj_size"):
        raise NotImplementedError("LoopLSTM has no projection (proj_size)")
    return LoopLSTM(input_size, hidden_size, **options)


class LoopLSTM(nn.LSTM):
    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence):
            raise NotApplicable("LoopLSTM takes padded input only, not a PackedSequence")
        if input.dim() not in (2, 3):
            raise ValueError(f"LSTM: Expected input to be 2D or 3D, got {input.dim()}D instead")
        batched, batch_dim = input.dim() == 3, 0 if self.batch_first else 1
        if not batched:  # (L, H_in) is a batch of one; so are the states
            input = input.unsqueeze(batch_dim)
            hx = None if hx is None else (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
        directions = 2 if self.bidirectional else 1
        if hx is None:
            zeros = input.new_zeros(self.num_layers * directions, input.size(batch_dim), self.hidden_size)
            hx = (zeros, zeros)
        self.check_forward_args(input, hx, None)  # nn.LSTM's own messages: sizes, dtype
        if input.size(1 - batch_dim) == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
        for what, tensor in (("parameter", self.weight_ih_l0), ("hidden", hx[0]), ("hidden", hx[1])):
            if tensor.device != input.device:
                raise RuntimeError(f"Input and {what} tensors are not at the same device, found input tensor "
                                   f"at {input.device} and {what} tensor at {tensor.device}")

        # bfloat16 and float16 are computed in float32, as fused kernels do: rounding every step to
        # 8 bits moves a 20-step LSTM's gradients by 6 % (the spec catches it).
        wide = torch.float32 if input.dtype in (torch.bfloat16, torch.float16) else input.dtype
        x = (input.transpose(0, 1) if self.batch_first else input).to(wide)  # (L, N, H_in)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                w_ih = getattr(self, f"weight_ih{suffix}").to(wide)
                w_hh = getattr(self, f"weight_hh{suffix}").to(wide)
                b_ih = getattr(self, f"bias_ih{suffix}").to(wide) if self.bias else 0
                b_hh = getattr(self, f"bias_hh{suffix}").to(wide) if self.bias else 0
                h = hx[0][layer * directions + direction].to(wide)
                c = hx[1][layer * directions + direction].to(wide)
                steps = [None] * len(x)
                for t in reversed(range(len(x))) if direction else range(len(x)):
                    i, f, g, o = (x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=-1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                    steps[t] = h
                outputs.append(torch.stack(steps))
                h_n.append(h)
                c_n.append(c)
            x = torch.cat(outputs, dim=-1)
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                x = torch.dropout(x, self.dropout, True)  # between layers, in training only

        output = (x.transpose(0, 1) if self.batch_first else x).to(input.dtype)
        h_n, c_n = torch.stack(h_n).to(input.dtype), torch.stack(c_n).to(input.dtype)
        if not batched:
            output, h_n, c_n = output.squeeze(batch_dim), h_n.squeeze(1), c_n.squeeze(1)
        return output, (h_n, c_n)
