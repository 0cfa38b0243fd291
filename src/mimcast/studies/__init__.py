"""The paper's studies (`mimcast experiment`): tables, the forget-gate figure, their reports."""
