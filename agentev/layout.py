"""The factory floor: a Mesa ``discrete_space`` grid, docks and cached shortest paths.

Map rows are read top to bottom; grid coordinates are ``(x, y) = (col, height - 1 - row)`` so
the grid drawn with y upwards looks like the map. Vehicles move between 4-neighbour aisle
cells. Shortest paths are breadth-first distance fields rooted at every dock (stations,
chargers, parking places), computed once per layout; a path from any cell to a dock follows the
field downhill, and is cached. Aisle congestion is not modelled: any number of vehicles may
share an aisle cell; capacity applies at docks only.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from mesa.discrete_space import OrthogonalVonNeumannGrid

from agentev.config import LayoutConfig

Coord = tuple[int, int]
_STEPS = ((1, 0), (-1, 0), (0, 1), (0, -1))


class FactoryLayout:
    """Static geometry of one factory.

    Args:
        config: The layout section of a scenario.
        random: Python ``random.Random`` for the Mesa grid.

    Attributes:
        grid: The Mesa grid (cells hold agents for display and queries).
        passable: Boolean array indexed ``[x, y]``; False where blocked.
        parking: Parking place coordinates, in map reading order.
        station_cells: Station id to dock coordinate.
        charger_cells: Charger id to dock coordinate.
    """

    def __init__(self, config: LayoutConfig, random=None) -> None:
        rows = config.rows
        self.cell_size_m = config.cell_size_m
        self.height = len(rows)
        self.width = len(rows[0])
        self.passable = np.zeros((self.width, self.height), dtype=bool)
        self.parking: list[Coord] = []
        for r, line in enumerate(rows):
            y = self.height - 1 - r
            for x, ch in enumerate(line):
                self.passable[x, y] = ch != "#"
                if ch == "P":
                    self.parking.append((x, y))
        self.station_cells = {s.id: self.to_xy(s.col, s.row) for s in config.stations}
        self.charger_cells = {c.id: self.to_xy(c.col, c.row) for c in config.chargers}
        self.grid = OrthogonalVonNeumannGrid((self.width, self.height), torus=False, random=random)
        self._fields: dict[Coord, dict[Coord, int]] = {}
        self._paths: dict[tuple[Coord, Coord], tuple[Coord, ...]] = {}
        self._neighbours = self._neighbour_lists()

    def to_xy(self, col: int, row: int) -> Coord:
        """Grid coordinate of a map (column, row)."""
        return (col, self.height - 1 - row)

    def cell(self, xy: Coord):
        """The Mesa cell at a grid coordinate."""
        return self.grid._cells[xy]

    def _neighbour_lists(self) -> dict[Coord, tuple[Coord, ...]]:
        out = {}
        w, h = self.width, self.height
        free = self.passable
        for x in range(w):
            for y in range(h):
                if free[x, y]:
                    out[(x, y)] = tuple(
                        (x + dx, y + dy)
                        for dx, dy in _STEPS
                        if 0 <= x + dx < w and 0 <= y + dy < h and free[x + dx, y + dy]
                    )
        return out

    def distance_field(self, target: Coord) -> dict[Coord, int]:
        """Cells-to-go from every reachable cell to ``target``, cached per target."""
        field = self._fields.get(target)
        if field is None:
            field = {target: 0}
            queue = deque([target])
            neighbours = self._neighbours
            while queue:
                cur = queue.popleft()
                d = field[cur] + 1
                for nxt in neighbours[cur]:
                    if nxt not in field:
                        field[nxt] = d
                        queue.append(nxt)
            self._fields[target] = field
        return field

    def distance_m(self, start: Coord, target: Coord) -> float:
        """Shortest path length between two cells (m); inf if unreachable."""
        d = self.distance_field(target).get(start)
        return float("inf") if d is None else d * self.cell_size_m

    def path(self, start: Coord, target: Coord) -> tuple[Coord, ...]:
        """Shortest path from ``start`` to ``target``, both included, cached.

        Raises:
            ValueError: if the target cannot be reached from the start.
        """
        key = (start, target)
        path = self._paths.get(key)
        if path is None:
            field = self.distance_field(target)
            if start not in field:
                raise ValueError(f"no path from {start} to {target}")
            cells = [start]
            cur = start
            neighbours = self._neighbours
            while cur != target:
                want = field[cur] - 1
                cur = next(n for n in neighbours[cur] if field.get(n) == want)
                cells.append(cur)
            path = tuple(cells)
            self._paths[key] = path
        return path
