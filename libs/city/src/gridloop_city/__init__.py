"""gridloop city: the district as data (grids, parts, categories, departments, routing,
calendar, users, sources, scoring), loaded and validated at start-up."""

from .calendar import WorkingCalendar
from .loader import City, CityDataError, haversine_m, load_city
from .models import Category, Cell, Department, Duration, Part, Route, Source, User

__all__ = [
    "Category",
    "Cell",
    "City",
    "CityDataError",
    "Department",
    "Duration",
    "Part",
    "Route",
    "Source",
    "User",
    "WorkingCalendar",
    "haversine_m",
    "load_city",
]
