"""Fidelity of the fast fibre model against MRG in NEURON (the validation reference).

``closedloop validate`` runs the same protocols on both models and prints the comparison
table. The detailed (MRG) results are stored as package data (``data/mrg_reference.json``,
made by ``benchmarks/mrg_reference.py``), so the comparison runs in seconds without NEURON;
rerunning MRG needs the ``validate`` extra (PyFibers and NEURON).
"""
