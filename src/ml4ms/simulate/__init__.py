"""Simulations with learned potentials, through ASE."""

from .calculator import Calculator

__all__ = ["Calculator"]
