from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from marketplace.models import Accelerator, ApiToken, CatalogVersion, Offer, Provider, Quote, Region, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "role", "provider", "is_staff", "is_active")
    list_filter = ("role", "is_staff", "is_active", "provider")
    search_fields = ("username", "email", "provider__name")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Marketplace", {"fields": ("role", "provider")}))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__username", "prefix")
    readonly_fields = ("key_hash", "prefix", "created_at", "last_used_at")


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "verification_status", "reliability_score", "catalog_name", "created_at")
    list_filter = ("kind", "verification_status", "interruptible_allowed")
    search_fields = ("name", "slug", "catalog_name")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "country", "grid_ci_gco2_per_kwh", "pue", "power_price_usd_per_kwh")
    list_filter = ("country",)
    search_fields = ("key", "name", "energy_zone")


@admin.register(Accelerator)
class AcceleratorAdmin(admin.ModelAdmin):
    list_display = ("canonical_name", "vendor", "memory_gb", "bf16_tflops", "fp64_tflops", "tdp_w", "stack_family")
    list_filter = ("vendor", "stack_family", "confidence")
    search_fields = ("canonical_name", "slug", "aliases")


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin):
    list_display = ("name", "provider", "accelerator", "accelerator_count", "region", "price_per_hour",
                    "interruptible_price_per_hour", "nodes_available", "status", "source")
    list_filter = ("status", "source", "interconnect", "inter_node", "provider", "accelerator__vendor")
    search_fields = ("name", "external_id", "provider__name", "accelerator__canonical_name", "region__key")
    list_select_related = ("provider", "accelerator", "region")
    raw_id_fields = ("region",)


@admin.register(Quote)
class QuoteAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "objective", "created_at", "expires_at")
    list_filter = ("objective",)
    search_fields = ("id", "user__username")
    raw_id_fields = ("user",)


@admin.register(CatalogVersion)
class CatalogVersionAdmin(admin.ModelAdmin):
    list_display = ("id", "version", "changed_at")
